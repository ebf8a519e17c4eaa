#!/usr/bin/env node
// retention-ts: the build and test pipeline of TypeScript retention plugins.
//
//   retention-ts build <entry.ts> [--name NAME] [--wit DIR] [--world WORLD] [--out-dir DIR]
//                                 [--engine starlingmonkey|quickjs|both]
//       Bundles the entry (which must `export const policy = exportPlugin(...)`) and the SDK into one ES module
//       with esbuild, then makes a component with each engine:
//         <out-dir>/<name>.js                  the bundle
//         <out-dir>/<name>.starlingmonkey.wasm componentize-js (StarlingMonkey), every WASI feature disabled
//         <out-dir>/<name>.quickjs.wasm        componentize-qjs (QuickJS), non-async runtime, WASI stubbed
//       Defaults: --name from the entry's package.json, --wit wit, --world plugin, --out-dir target, --engine both.
//
//   retention-ts test [files...]
//       Runs tests natively with node's test runner (default: every *.test.ts under test/), with TypeScript
//       transpiled on load and the host's imports answered by retention-sdk/testing.
//
//   retention-ts guest-types <wit-dir> <world> <out-dir>
//       Writes the world's guest TypeScript declarations, as `jco guest-types` would.
//
// The tools (esbuild, componentize-js, componentize-qjs, jco) come from the project's own node_modules, pinned by
// its package-lock.json. Nothing here writes to a plugin's stdout: components must not (the SDK routes a
// component's `console.log/info/debug/warn/error` to the host's log).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const projectRequire = createRequire(join(process.cwd(), "package.json"));

/**
 * Imports a tool. Resolved from this file, which lives in the project (the workspace's `sdk/`, or a standalone
 * project's `vendor/retention-sdk/`), so the lookup walks up to the project's own node_modules.
 */
async function tool(name) {
  return import(name);
}

function usage(message) {
  process.stderr.write(`retention-ts: ${message}\n(see the header of ${relative(process.cwd(), fileURLToPath(import.meta.url))})\n`);
  process.exit(2);
}

function parseArgs(argv, flags) {
  const positional = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const [k, inline] = a.slice(2).split("=", 2);
      if (!flags.includes(k)) usage(`unknown option --${k}`);
      const v = inline ?? argv[++i];
      if (v === undefined) usage(`--${k} needs a value`);
      opts[k] = v;
    } else {
      positional.push(a);
    }
  }
  return { positional, opts };
}

/** The `name` of the package.json nearest to `file`. */
async function packageName(file) {
  for (let dir = dirname(resolve(file)); ; dir = dirname(dir)) {
    const p = join(dir, "package.json");
    if (existsSync(p)) {
      return JSON.parse(await readFile(p, "utf8")).name;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

const ms = (t0) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const size = (n) => `${(n / 1048576).toFixed(2)} MiB`;

async function build(argv) {
  const { positional, opts } = parseArgs(argv, ["name", "wit", "world", "out-dir", "engine"]);
  if (positional.length !== 1) usage("build takes one entry file");
  const entry = positional[0];
  const name = opts.name ?? (await packageName(entry));
  if (!name) usage("no --name and no package.json name");
  const wit = resolve(opts.wit ?? "wit");
  const world = opts.world ?? "plugin";
  const outDir = resolve(opts["out-dir"] ?? "target");
  const engine = opts.engine ?? "both";
  if (!["both", "starlingmonkey", "quickjs"].includes(engine)) usage(`unknown engine ${engine}`);
  if (!existsSync(wit)) usage(`no WIT at ${wit}`);
  await mkdir(outDir, { recursive: true });

  const esbuild = await tool("esbuild");
  const bundle = join(outDir, `${name}.js`);
  let t0 = performance.now();
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    // The component's imports: wired by the componentizers, never bundled.
    external: ["retention:*"],
    outfile: bundle,
    legalComments: "none",
    logLevel: "warning",
  });
  const js = await readFile(bundle, "utf8");
  if (!/export\s*\{[^}]*\bpolicy\b[^}]*\}/.test(js)) {
    throw new Error(`${entry} does not export \`policy\`: add \`export const policy = exportPlugin(plugin);\``);
  }
  process.stderr.write(`bundle        ${relative(process.cwd(), bundle)} (${(js.length / 1024).toFixed(1)} KiB, ${ms(t0)})\n`);

  if (engine === "both" || engine === "starlingmonkey") {
    t0 = performance.now();
    const { componentize } = await tool("@bytecodealliance/componentize-js");
    const { component } = await componentize({
      sourcePath: bundle,
      witPath: wit,
      worldName: world,
      // A pure component: no WASI at all (the host links WASI to an empty context and fails a plugin that writes
      // to stdout or stderr, and jco's default imports wasi:http, which the host refuses).
      disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
    });
    const out = join(outDir, `${name}.starlingmonkey.wasm`);
    await writeFile(out, component);
    process.stderr.write(`starlingmonkey ${relative(process.cwd(), out)} (${size(component.length)}, ${ms(t0)})\n`);
  }
  if (engine === "both" || engine === "quickjs") {
    t0 = performance.now();
    const { componentize } = await tool("componentize-qjs");
    const { component } = await componentize({
      witPath: wit,
      world,
      jsSource: js,
      jsPath: bundle,
      // The non-async runtime (the host does not use component-model async), WASI imports replaced by traps.
      sync: true,
      stubWasi: true,
    });
    const out = join(outDir, `${name}.quickjs.wasm`);
    await writeFile(out, component);
    process.stderr.write(`quickjs        ${relative(process.cwd(), out)} (${size(component.length)}, ${ms(t0)})\n`);
  }
}

function findTests(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (e === "node_modules") continue;
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (/\.test\.[cm]?ts$/.test(e)) out.push(p);
  }
  return out.sort();
}

function test(argv) {
  const files = argv.length > 0 ? argv : findTests("test");
  if (files.length === 0) usage("no test files (expected test/**/*.test.ts)");
  const r = spawnSync(
    process.execPath,
    ["--import", pathToFileURL(join(here, "register.mjs")).href, "--enable-source-maps", "--test", ...files],
    { stdio: "inherit" },
  );
  process.exit(r.status ?? 1);
}

async function guestTypes(argv) {
  const [witDir, world, outDir] = argv;
  if (!witDir || !world || !outDir) usage("guest-types <wit-dir> <world> <out-dir>");
  // jco 1.35 runs its bindgen as a component over @bytecodealliance/preview2-shim 0.26, whose filesystem starts
  // with no preopened directory, and `jco guest-types` never adds one: every WIT path fails with "os error 44".
  // Preopen the root on the very shim instance jco-transpile uses, then call its API.
  let transpileMain;
  try {
    transpileMain = projectRequire.resolve("@bytecodealliance/jco-transpile");
  } catch {
    transpileMain = createRequire(projectRequire.resolve("@bytecodealliance/jco")).resolve("@bytecodealliance/jco-transpile");
  }
  const fromTranspile = createRequire(transpileMain);
  const shimFs = await import(pathToFileURL(fromTranspile.resolve("@bytecodealliance/preview2-shim/filesystem")).href);
  shimFs._setPreopens({ "/": "/" });
  const { generateGuestTypes } = await import(pathToFileURL(transpileMain).href);
  const files = await generateGuestTypes(resolve(witDir), { name: world, worldName: world, guest: true });
  for (const [file, bytes] of Object.entries(files)) {
    const path = join(outDir, file);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  }
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case "build":
    await build(rest);
    break;
  case "test":
    test(rest);
    break;
  case "guest-types":
    await guestTypes(rest);
    break;
  default:
    usage(command ? `unknown command ${command}` : "missing command: build, test or guest-types");
}

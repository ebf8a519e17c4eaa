// Node module hooks for running plugins natively (registered by register.mjs):
// - `retention:policy/host@...` (the component's import of the host) resolves to the SDK's testing stand-in;
// - `.ts` files are transpiled with esbuild (types stripped, nothing bundled) with an inline source map;
// - a relative import without an extension (`./rules`) also finds `./rules.ts`, as a bundler would.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const STAND_IN = new URL("../src/testing-host.ts", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith("retention:policy/host")) {
    return { url: STAND_IN, shortCircuit: true };
  }
  try {
    return await next(specifier, context);
  } catch (e) {
    const relative = specifier.startsWith("./") || specifier.startsWith("../");
    if (relative && e?.code === "ERR_MODULE_NOT_FOUND" && !/\.[cm]?[jt]sx?$/.test(specifier)) {
      for (const ext of [".ts", "/index.ts"]) {
        try {
          return await next(specifier + ext, context);
        } catch {
          // try the next one
        }
      }
    }
    throw e;
  }
}

export async function load(url, context, next) {
  if (url.startsWith("file:") && /\.[cm]?tsx?$/.test(url)) {
    const path = fileURLToPath(url);
    const source = await readFile(path, "utf8");
    const { code } = await transform(source, {
      loader: url.endsWith("x") ? "tsx" : "ts",
      format: "esm",
      target: "es2022",
      sourcemap: "inline",
      sourcefile: path,
    });
    return { format: "module", source: code, shortCircuit: true };
  }
  return next(url, context);
}

/**
 * Failing a pass. Inside `begin`, `observe` and `decide`, anything thrown fails the pass (nothing is applied) and
 * becomes the plugin's error text:
 *
 * - `fail(message)` (a {@link PluginError}) and a thrown string: exactly that message, for expected failures such as
 *   a malformed parameter;
 * - any other `Error` (a bug: `TypeError`, ...): its name, message and the head of its stack, so that the host's
 *   error says where it happened.
 *
 * Why the SDK converts: across the component boundary only a thrown *string* becomes the `err` of the export's
 * `result<_, string>` in both engines. StarlingMonkey turns any other thrown value into a trap (the host reports
 * a wasm backtrace and no message); QuickJS keeps an `Error`'s message but drops its name and stack.
 */

/** An expected failure whose message is shown as it is (no stack): a bad parameter, a refused pass. */
export class PluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PluginError";
  }
}

/** Fails the pass with `message` (throws a {@link PluginError}). Usable as an expression: `return fail("...")`. */
export function fail(message: string): never {
  throw new PluginError(message);
}

/** Stack frames kept in the error text of an unexpected error. */
const STACK_FRAMES = 4;

/** The error text for anything thrown by a plugin (see the module's documentation). */
export function errorText(thrown: unknown): string {
  if (typeof thrown === "string") {
    return thrown;
  }
  if (thrown instanceof PluginError) {
    return thrown.message;
  }
  if (thrown instanceof Error) {
    const head = `${thrown.name || "Error"}: ${thrown.message}`;
    const frames = stackFrames(thrown.stack, head);
    return frames.length > 0 ? `${head} (at ${frames.join(" < ")})` : head;
  }
  let text: string;
  try {
    text = typeof thrown === "object" && thrown !== null ? JSON.stringify(thrown) : String(thrown);
  } catch {
    text = Object.prototype.toString.call(thrown);
  }
  return `plugin threw a non-Error value: ${text}`;
}

/**
 * The first frames of a stack, one line each, whatever the engine's format: V8 and QuickJS write
 * `Name: message` then `    at f (file:1:2)` lines, SpiderMonkey writes `f@file:1:2` lines.
 */
function stackFrames(stack: string | undefined, head: string): string[] {
  if (typeof stack !== "string") {
    return [];
  }
  const lines = stack.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length && out.length < STACK_FRAMES; i++) {
    let line = lines[i]!.trim();
    if (line === "" || (i === 0 && line === head.trim())) {
      continue;
    }
    if (line.startsWith("at ")) {
      line = line.slice(3);
    }
    out.push(line);
  }
  return out;
}

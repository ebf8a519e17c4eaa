// {{name}}: compresses segments older than `compress_after_days` and drops those older than `drop_after_days`,
// except segments labelled `kind=audit`, which are only compressed.
//
// Parameters: `drop_after_days` (required, whole days), `compress_after_days` (optional, default 1).
import { Decision, definePlugin, exportPlugin, fail } from "retention-sdk";

const rule = definePlugin({
  info: {
    name: "{{name}}",
    version: "0.1.0",
    description: "Compresses segments after some days and drops them later, except audit segments.",
  },

  // Once per pass: read and check the parameters. Anything thrown here fails the pass with its message.
  begin(ctx) {
    ctx.checkParams(["compress_after_days", "drop_after_days"]); // a misspelt parameter fails the pass
    const compressAfterDays = ctx.paramDays("compress_after_days", 1);
    const dropAfterDays = ctx.paramDays("drop_after_days");
    if (compressAfterDays > dropAfterDays) {
      fail(
        `compress_after_days (${compressAfterDays}) is more than drop_after_days (${dropAfterDays}): ` +
          "nothing would ever be compressed",
      );
    }
    return { compressAfterDays, dropAfterDays };
  },

  // Once per segment, oldest first.
  decide(seg, { compressAfterDays, dropAfterDays }) {
    const age = seg.ageDays();
    if (age >= dropAfterDays && !seg.labelIs("kind", "audit")) {
      return Decision.drop("older than drop_after_days");
    }
    if (age >= compressAfterDays && seg.tier === "hot") {
      return Decision.compress("older than compress_after_days");
    }
    return Decision.keep();
  },
});

export default rule;
// The component's export, which the host calls.
export const policy = exportPlugin(rule);

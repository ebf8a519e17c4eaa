/// <reference path="./interfaces/retention-policy-host.d.ts" />
/// <reference path="./interfaces/retention-policy-policy.d.ts" />
/// <reference path="./interfaces/retention-policy-types.d.ts" />
declare module 'retention:policy/plugin@0.1.0' {
  export type * as RetentionPolicyHost010 from 'retention:policy/host@0.1.0'; // import retention:policy/host@0.1.0
  export type * as RetentionPolicyTypes010 from 'retention:policy/types@0.1.0'; // import retention:policy/types@0.1.0
  export * as policy from 'retention:policy/policy@0.1.0'; // export retention:policy/policy@0.1.0
}

/// <reference path="./retention-policy-types.d.ts" />
declare module 'retention:policy/policy@0.1.0' {
  /**
   * Describes the plugin. Called when the plugin is loaded and checked, on its own instance.
   */
  export function info(): PluginInfo;
  /**
   * Starts a pass. An error (e.g. a missing or malformed parameter) fails the pass with the plugin's message;
   * nothing is applied.
   */
  export function begin(context: PassContext): PassOptions;
  /**
   * Shows the plugin a batch before any decision, only when `begin` set `observe-first`. An error fails the pass.
   */
  export function observe(batch: SegmentBatch): void;
  /**
   * Decides the fate of every segment of a batch. An error fails the pass; nothing of it is applied.
   */
  export function decide(batch: SegmentBatch): Verdicts;
  export type PluginInfo = import('retention:policy/types@0.1.0').PluginInfo;
  export type PassContext = import('retention:policy/types@0.1.0').PassContext;
  export type PassOptions = import('retention:policy/types@0.1.0').PassOptions;
  export type SegmentBatch = import('retention:policy/types@0.1.0').SegmentBatch;
  export type Verdicts = import('retention:policy/types@0.1.0').Verdicts;
}

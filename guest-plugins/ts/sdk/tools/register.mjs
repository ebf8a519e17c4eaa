// `node --import <this file>`: registers the SDK's module hooks (loader.mjs), so that plugins and their tests run
// natively: TypeScript is transpiled on load and the host's WIT imports resolve to the testing stand-in.
import { register } from "node:module";

register("./loader.mjs", import.meta.url);

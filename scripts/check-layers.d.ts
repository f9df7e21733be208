/** Types of scripts/check-layers.js, for the tests that run it in-process. */
/** The pure core's folder, repository-relative. */
export declare const PURE_CORE: string;
export declare const PURE_PACKAGES: string[];
export declare const PURE_BUILTINS: Record<string, string[]>;
export declare function importsOf(src: string): Array<{ spec: string; clause: string }>;
export declare function checkLayers(root: string, opts?: { pure?: string | string[] }): string[];

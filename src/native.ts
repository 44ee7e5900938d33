// Loads the native addon once. Everything native goes through this module, so
// a missing or stale build fails here with one clear message.
import bindingsLoader = require('bindings');

export interface FieldLayout { offset: number; size: number }
export interface RecordLayout { size: number; [field: string]: FieldLayout | number }
export interface NativeLayout {
  magic: number;
  version: number;
  header: RecordLayout;
  desc: RecordLayout;
  record4: RecordLayout;
  record6: RecordLayout;
  key4?: RecordLayout;
  key6?: RecordLayout;
  actions: Record<'ACCEPT' | 'DROP' | 'REJECT' | 'LOG' | 'COUNT' | 'SKIP', number>;
  recordFlags: Record<'NEEDS_L4' | 'TCP_FLAGS_INVERT' | 'RETURNS_TO_POLICY' | 'HAS_EXT' | 'L4_BEFORE_CT' | 'L4_BEFORE_ADDR', number>;
  ext: { magic: number; ops: Record<string, number>; states: Record<'limit' | 'hashlimit' | 'recent' | 'connlimit', number> };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = { layout: NativeLayout } & Record<string, any>;

let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!cached) {
    try {
      cached = bindingsLoader('flatwall_native') as NativeAddon;
    } catch (err) {
      throw new Error(
        `flatwall: the native addon is not built (${(err as Error).message.split('\n')[0]}); run "npm install" or "npm run build"`,
      );
    }
  }
  return cached;
}

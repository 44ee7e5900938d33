// The benchmarks' command line: `--name` switches and `--name VALUE` options,
// read the same way by every bench script.
/** The arguments after the script name (also printed back as the command that ran). */
export const argv = process.argv.slice(2);

/** True when the switch is on the command line. */
export const flag = (name: string): boolean => argv.includes(name);

/** The value after `name`, or undefined when the option is absent. */
export const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

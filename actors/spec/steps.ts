// A spec rewrite as a list of named steps, as runc's validator runs a list of named checks
// (libcontainer/configs/validate/validator.go): each step can be read, unit-tested and reported on
// its own, and a step that refuses or fails names itself in the error.
import { EciError } from '../errors.ts';
import type { OciSpec } from '../runc/spec.ts';

export interface SpecStep<C> {
  /** kebab-case; shown in errors. */
  readonly name: string;
  /** The spec with this step's change (the spec itself when there is nothing to do). Pure; throws an EciError to refuse. */
  run(spec: OciSpec, ctx: C): OciSpec;
  /** Its refusals are a fixed text that users and tests match (Docker's ECI wording): kept as it is, the step only in `.step`. */
  readonly fixedMessage?: boolean;
}

/** A refusal by a named step: the step's own error, with the step named. */
export class SpecStepError extends EciError {
  readonly step: string;
  constructor(step: string, e: EciError, fixedMessage: boolean) {
    super(e.code, fixedMessage ? e.message : `${e.message} (step ${step})`, { hint: e.hint, cause: e });
    this.step = step;
  }
}

/** Runs `steps` in order, each on the previous one's spec; the first refusal stops the list. */
export function runSteps<C>(steps: readonly SpecStep<C>[], spec: OciSpec, ctx: C): OciSpec {
  let out = spec;
  for (const s of steps) {
    try {
      out = s.run(out, ctx);
    } catch (e) {
      if (e instanceof EciError) throw new SpecStepError(s.name, e, s.fixedMessage === true);
      // Not a refusal but a bug: it stays an unexpected error (logged with its stack), named.
      throw new Error(`spec step ${s.name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }
  return out;
}

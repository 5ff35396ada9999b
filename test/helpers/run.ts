// One way for the test helpers to run a command: output collected, input fed (text or a stream),
// killed after a timeout (an error naming the command), exit code 128 when killed by a signal.
import { spawn } from 'node:child_process';

export interface RunResult { code: number; stdout: string; stderr: string }

export function runCmd(
  bin: string,
  args: string[],
  env: Record<string, string> | NodeJS.ProcessEnv | undefined,
  input: string | NodeJS.ReadableStream | undefined,
  timeoutMs: number,
): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(bin, args, { env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin!.on('error', () => {}); // EPIPE when the command exits before reading its input
    if (input !== undefined && typeof input !== 'string') input.pipe(child.stdin!);
    else child.stdin!.end(input ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      rej(new Error(`cannot run ${bin}: ${e.message}`));
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      if (timedOut) rej(new Error(`${bin} ${args.join(' ')} timed out after ${timeoutMs} ms; stderr: ${stderr.trim()}`));
      else res({ code: code ?? (sig ? 128 : -1), stdout, stderr });
    });
  });
}

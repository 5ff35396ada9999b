// A one-line progress bar (bytes done / total) for long imports. Drawn only when the stream is a
// TTY, at most every 100 ms; otherwise every call is a no-op, so logs and pipes stay clean.
export interface ProgressSink { isTTY?: boolean; columns?: number; write(s: string): unknown }

const mb = (n: number) => (n / 1e6).toFixed(1);

/** The bar's text for `done` of `total` bytes in a `width`-wide bar. Pure. */
export function progressLine(label: string, done: number, total: number, width = 30): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const fill = Math.round(f * width);
  return `${label} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${mb(done)}/${mb(total)} MB ${Math.round(f * 100)}%`;
}

export class Progress {
  private done = 0;
  private last = 0;
  private drawn = false;
  constructor(private label: string, private total: number, private out: ProgressSink | undefined) {}

  private get on(): boolean {
    return !!this.out?.isTTY;
  }

  add(n: number): void {
    this.done += n;
    if (!this.on) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.draw();
  }

  private draw(): void {
    this.out!.write(`\r${progressLine(this.label, this.done, this.total)}\x1b[K`);
    this.drawn = true;
  }

  /** Final state of the bar and a newline (only if a bar was shown). */
  end(): void {
    if (!this.on || !this.drawn) return;
    this.draw();
    this.out!.write('\n');
  }
}

// The setup most Docker suites share: an eci manager, a private dockerd with eci registered as
// runtime "eci", and the busybox image; and the matching teardown.
import { importBusyboxImage, startDockerd, type Dockerd } from './dockerd.ts';
import { startManager, type TestManager } from './manager.ts';

export interface EciDocker { m: TestManager; d: Dockerd; img: string }

export async function startEciDocker(o: { managerEnv?: Record<string, string> } = {}): Promise<EciDocker> {
  const m = await startManager({ env: o.managerEnv });
  try {
    const d = await startDockerd({ runtimes: { eci: m.runtime } });
    return { m, d, img: await importBusyboxImage(d) };
  } catch (e) {
    await m.destroy();
    throw e;
  }
}

export async function stopEciDocker(e: Partial<EciDocker>): Promise<void> {
  await e.d?.stop();
  await e.m?.destroy();
}

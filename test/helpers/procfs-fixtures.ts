// Host /proc files the procfs unit tests render from.

export const HOST_MEMINFO =
  'MemTotal:       16303852 kB\n' +
  'MemFree:         9876543 kB\n' +
  'MemAvailable:   12345678 kB\n' +
  'Buffers:          123456 kB\n' +
  'SwapTotal:             0 kB\n';

export const HOST_CPUINFO = [0, 1, 2, 3]
  .map((i) => `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU @ 2.00GHz\ncore id\t\t: ${i}\n`)
  .join('\n') + '\n';

export const HOST_STAT =
  'cpu  400 0 200 9000 10 0 5 0 0 0\n' +
  'cpu0 100 0 50 2250 3 0 1 0 0 0\n' +
  'cpu1 100 0 50 2250 3 0 1 0 0 0\n' +
  'cpu2 100 0 50 2250 2 0 1 0 0 0\n' +
  'cpu3 100 0 50 2250 2 0 2 0 0 0\n' +
  'intr 123456 1 2 3\nctxt 999999\nbtime 1700000000\nprocesses 54321\nprocs_running 3\nprocs_blocked 0\nsoftirq 1 2 3 4 5 6 7 8 9 10 11\n';

export const HOST_DISKSTATS =
  '   7       0 loop0 5 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n' +
  '   8       0 sda 9000 10 800000 500 7000 20 600000 900 0 1000 1400 0 0 0 0 0 0\n' +
  '   8       1 sda1 8000 10 700000 400 6000 20 500000 800 0 900 1200 0 0 0 0 0 0\n';

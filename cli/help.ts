// The text of `eci --help` and `eci COMMAND --help`.

export const HELP: Record<string, string> = {
  '': `Usage: eci COMMAND [OPTIONS]

Enhanced Container Isolation: every container in its own user namespace with an exclusive
65536-wide uid/gid range, coordinated by actors over NATS.

Commands:
  daemon     Run the manager (embedded nats-server unless ECI_NATS_URL is set)
  ps         List containers with their uid/gid ranges and states
  settings   Check an admin settings file (settings validate FILE) or print the defaults
  events     Follow or replay lifecycle, allocator, vetter and settings events
  services   List the actors registered as NATS micro-services, with request counters
  run        Run a container from a local image with no engine (eci run [FLAGS] IMAGE [CMD...])
  image      Manage the local images eci run uses (import, ls, rm)
  check      Run every isolation property against the live system (Docker, or eci run)
  install    Register eci in Docker's daemon.json and write a systemd unit for the manager
  uninstall  Undo exactly what install did
  version    Print the version

Engines call bin/eci-runc, a runc-compatible runtime. Run 'eci COMMAND --help' for more.
Environment: ECI_SOCKET, ECI_STATE_DIR, ECI_RUN_DIR, ECI_NATS_URL, ECI_NATS_PORT, ECI_RUNC,
ECI_UID_BASE, ECI_UID_SIZE, ECI_UID_COUNT, ECI_LOG_LEVEL, ECI_GROUP; for an external bus
ECI_NATS_CREDS or ECI_NATS_USER + ECI_NATS_PASSWORD, ECI_NATS_TLS_CA, ECI_NATS_ALLOW_INSECURE=1
(see README "Threat model").`,
  daemon: `Usage: eci daemon

Runs the eci manager in the foreground, logging JSON lines to stdout. Listens on ECI_SOCKET
(default /run/eci/eci.sock) for eci-runc; keeps state under ECI_STATE_DIR (default /var/lib/eci).
The embedded nats-server admits only the manager and the read-only observer (credentials in
ECI_RUN_DIR/observer.json for group ECI_GROUP). An external ECI_NATS_URL needs credentials, and TLS
off this host, unless ECI_NATS_ALLOW_INSECURE=1. Stops cleanly on SIGINT/SIGTERM.`,
  settings: `Usage: eci settings validate [FILE]
       eci settings defaults

validate checks FILE (default: ECI_SETTINGS or /etc/eci/settings.json) and prints the settings
it yields, or one line naming the bad field and why, with exit status 1.
defaults prints the built-in settings (the schema, by example).`,
  events: `Usage: eci events [--follow|-f] [--since TIME|DURATION] [--seq N] [--container ID]
                  [--kind container|allocator|vetter|settings|manager|sysctl] [--json]

Without --follow, prints the events stored so far (from --since/--seq, else from the start) and
exits; with --follow, prints new events as they happen (or from --since/--seq on) until Ctrl-C.
Reads the JetStream stream ECI_EVENTS at ECI_NATS_URL (default nats://127.0.0.1:ECI_NATS_PORT).`,
  check: `Usage: eci check [--engine docker|eci] [--docker PATH] [--host DOCKER_HOST] [--runtime NAME] [--image IMAGE]

Runs small containers and prints, for every isolation property, what is expected, what was
observed and whether it passed. Exits 1 if any property fails.
--engine docker: through the Docker engine (client /usr/bin/docker, runtime "eci", image
  "eci-busybox" as made by bin/eci-quickstart);
--engine eci: through eci run (image "busybox", the built-in one), no engine needed.
Default: docker when its engine answers, else eci.`,
  services: `Usage: eci services [NAME] [--json]

Asks every service on the bus ($SRV.STATS, the NATS micro-service protocol) and prints one line
per endpoint: service, instance id, version, endpoint, subject, requests, errors, average time.
NAME limits it to one service (eci-allocator, eci-vetter, eci-sysctl). The NATS CLI shows the
same with 'nats micro ls' and 'nats micro stats NAME'. Exits 1 if no service answers.`,
  run: `Usage: eci run [FLAGS] IMAGE [CMD...]

Runs a container from the local image store with no engine, through bin/eci-runc, so the manager
(eci daemon, which must be running) applies every eci rule. The container is removed when it
ends (--rm is implied). The image "busybox" is built in. Exit status: the container's (128+N if a
signal N killed it); 125 when eci could not run it (bad flag, unknown image, refused); 126/127
when the command cannot be run.

  -i, --interactive        keep stdin attached
  -t, --tty                allocate a pseudo-terminal (raw mode, resized with the terminal)
      --rm                 accepted (always the case)
      --name NAME          container name (1-128 of [A-Za-z0-9_-]); default eci-<random>
  -v, --volume SRC:DST[:ro]  bind-mount an absolute host path (checked by the admin policy)
      --privileged         every capability eci holds, no masked paths (still in its user namespace)
      --cap-add CAP, --cap-drop CAP   add or drop capabilities (ALL, NET_ADMIN, CAP_SYS_ADMIN, ...)
      --pid/--ipc/--uts host       refused, as through Docker
      --network none|host  none (default): a network namespace with loopback only (no bridge);
                           host is refused
      --userns host        ignored: eci always gives the container its own user namespace
  -e, --env KEY=VALUE|KEY  environment
  -w, --workdir DIR        working directory
  -m, --memory BYTES       memory limit (e.g. 512m)
  -u, --user UID[:GID]     numeric ids inside the container
      --hostname NAME, --entrypoint CMD`,
  image: `Usage: eci image import [--busybox] [SRC [NAME[:TAG]]]
       eci image ls [--json]
       eci image rm NAME[:TAG]...

import: SRC is a rootfs tarball (.tar or .tar.gz) or an OCI image layout directory (index.json,
  blobs/sha256/...; layers applied in order with whiteouts, every blob checked against its digest).
  NAME defaults to SRC's base name, TAG to latest. All or nothing: a failed import leaves no trace.
  A progress bar is drawn on stderr when it is a terminal. --busybox makes the built-in busybox
  image (from the host's busybox-static; eci run busybox does it on first use).
Images live in ECI_STATE_DIR/images; files keep their ids (0..65535), eci idmaps them at run time.`,
  install: `Usage: eci install [--daemon-json PATH] [--unit-dir DIR]

Adds runtime "eci" (this checkout's bin/eci-runc) to /etc/docker/daemon.json, keeping every other
key, writes /etc/systemd/system/eci.service for the manager, and creates the group ECI_GROUP
(default eci) whose members may read the event stream and $SRV (eci events, eci services).
Idempotent; prints what changed. A malformed daemon.json is reported and left untouched.`,
  uninstall: `Usage: eci uninstall [--daemon-json PATH] [--unit-dir DIR]

Undoes exactly what install did: the "eci" runtime entry (or puts back the one that was there),
the unit file, the group if install created it. Idempotent.`,
  ps: `Usage: eci ps [--json]

Lists the containers the manager knows, with state and host uid/gid range.`,
};

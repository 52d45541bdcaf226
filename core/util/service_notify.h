/* The service manager's notification protocol (sd_notify(3)), written
 * out because it is one datagram: "READY=1", "WATCHDOG=1", ... sent to the
 * AF_UNIX socket NOTIFY_SOCKET names ("@name" for an abstract socket).
 * Without NOTIFY_SOCKET every call does nothing, so provd behaves the
 * same under systemd, another supervisor or a terminal. */
#ifndef CORE_UTIL_SERVICE_NOTIFY_H
#define CORE_UTIL_SERVICE_NOTIFY_H

/* Sends state (newline-separated KEY=VALUE lines) when NOTIFY_SOCKET is
 * set.  1 sent, 0 nothing to notify, -1 failed (errno says why; a
 * supervisor that went away is no reason to stop serving). */
int service_notify(const char *state);

/* How often the service manager wants WATCHDOG=1, in milliseconds: half
 * of WATCHDOG_USEC, when it names this process (WATCHDOG_PID, if set, is
 * ours); 0 when no watchdog is armed. */
long service_watchdog_interval_ms(void);

#endif

/* watchdog: see watchdog.h. The side channel is one UDP socket per rank,
 * bound to any address; the ports and host names are gathered once at
 * start-up (MPI, main thread). Datagrams are 40 bytes: "SMWD", version 1,
 * type (1 question, 2 answer), 2 bytes 0, the job's token (rank 0's random
 * 64 bits: other jobs' datagrams are ignored), the sender's rank, phase,
 * step and seconds in its phase, little-endian. Nothing is sent while the
 * job makes progress. */
#include "watchdog.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"

#define MSG_BYTES 40
#define NBINS 200 /* step-time histogram: 20 bins per decade from 1e-5 s to 1e5 s */
#define HOST_MAX 64

typedef struct Peer {
    char host[HOST_MAX];
    uint16_t port;
    int resolved; /* 0 not yet, 1 addr valid, -1 cannot resolve */
    struct sockaddr_in addr;
} Peer;

/* What a rank says of itself (an answer, or the watchdog's own reading). */
typedef struct Where {
    int known;
    uint32_t phase;
    uint64_t step;
    double seconds;
} Where;

static struct {
    int on, rank, world, sock, wake[2];
    double timeout;
    uint64_t token;
    char host[HOST_MAX];
    Peer *peers;
    pthread_t thread;
    /* published by the main thread, read by the watchdog thread */
    _Atomic uint32_t phase;
    _Atomic uint64_t step, phase_start, step_start; /* seconds as double bits */
    /* seconds this process spent stopped (SIGSTOP, a suspended shell job),
     * written by the watchdog thread only: the clocks below leave them out */
    _Atomic uint64_t paused;
    _Atomic uint32_t bins[NBINS];
} W;

static const char *const phase_names[WD_NPHASES] = {"start-up",   "data",      "forward",   "exchange",
                                                    "backward",   "allreduce", "optimizer", "checkpoint",
                                                    "evaluation", "end"};

const char *watchdog_phase_name(WatchPhase p) { return p < WD_NPHASES ? phase_names[p] : "?"; }

static uint64_t bits(double x) {
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}
static double unbits(uint64_t b) {
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* The clock of steps and phases: the monotonic clock without the time this
 * process was stopped, which is no rank's slowness: a rank that is
 * continued after a stop (Ctrl-Z and fg, or mpirun's SIGCONT before it ends
 * a job) does not take its own stop for a stall of the others. */
static double active_seconds(void) {
    return now_seconds() - unbits(atomic_load_explicit(&W.paused, memory_order_relaxed));
}

/* ---- the main thread's side: a few relaxed stores ------------------------- */

void watchdog_phase(WatchPhase p) {
    if (!W.on) return;
    atomic_store_explicit(&W.phase_start, bits(active_seconds()), memory_order_relaxed);
    atomic_store_explicit(&W.phase, (uint32_t)p, memory_order_relaxed);
}

void watchdog_step(uint64_t step) {
    if (!W.on) return;
    uint64_t now = bits(active_seconds());
    atomic_store_explicit(&W.step, step, memory_order_relaxed);
    atomic_store_explicit(&W.step_start, now, memory_order_relaxed);
    atomic_store_explicit(&W.phase_start, now, memory_order_relaxed);
    atomic_store_explicit(&W.phase, WD_DATA, memory_order_relaxed);
}

void watchdog_step_done(void) {
    if (!W.on) return;
    double dt = active_seconds() - unbits(atomic_load_explicit(&W.step_start, memory_order_relaxed));
    int b = dt > 0 ? (int)floor((log10(dt) + 5) * 20) : 0;
    b = b < 0 ? 0 : b >= NBINS ? NBINS - 1 : b;
    atomic_fetch_add_explicit(&W.bins[b], 1, memory_order_relaxed);
}

/* ---- the limits ------------------------------------------------------------ */

static double median_step(void) {
    uint64_t n = 0, seen = 0;
    uint32_t c[NBINS];
    for (int i = 0; i < NBINS; i++) n += c[i] = atomic_load_explicit(&W.bins[i], memory_order_relaxed);
    if (n == 0) return 0;
    for (int i = 0; i < NBINS; i++)
        if ((seen += c[i]) * 2 >= n) return pow(10, (i + 0.5) / 20 - 5);
    return 0;
}

double watchdog_step_limit(void) { return fmax(W.timeout, 10 * median_step()); }

static int step_phase(uint32_t p) { return p >= WD_DATA && p <= WD_OPTIMIZER; }

/* Own position: phase, step, the seconds spent, the limit and how long the
 * limited span has lasted. */
static Where own(double *lasted, double *limit) {
    Where w = {1, atomic_load_explicit(&W.phase, memory_order_relaxed),
               atomic_load_explicit(&W.step, memory_order_relaxed), 0};
    double now = active_seconds(), ps = unbits(atomic_load_explicit(&W.phase_start, memory_order_relaxed));
    w.seconds = now - ps;
    if (step_phase(w.phase)) {
        *limit = watchdog_step_limit();
        *lasted = now - unbits(atomic_load_explicit(&W.step_start, memory_order_relaxed));
    } else {
        *limit = W.timeout;
        *lasted = w.seconds;
    }
    return w;
}

/* ---- datagrams ------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static int peer_addr(int r, struct sockaddr_in *out) {
    Peer *p = &W.peers[r];
    if (p->resolved == 0) {
        p->resolved = -1;
        memset(&p->addr, 0, sizeof p->addr);
        p->addr.sin_family = AF_INET;
        p->addr.sin_port = htons(p->port);
        if (!strcmp(p->host, W.host)) {
            p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            p->resolved = 1;
        } else {
            struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *ai = NULL;
            if (getaddrinfo(p->host, NULL, &hints, &ai) == 0 && ai) {
                p->addr.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
                p->resolved = 1;
            }
            if (ai) freeaddrinfo(ai);
        }
    }
    *out = p->addr;
    return p->resolved == 1 ? 0 : -1;
}

static void send_msg(int to, int type, const Where *w) {
    uint8_t m[MSG_BYTES] = {'S', 'M', 'W', 'D', 1, (uint8_t)type};
    put64(m + 8, W.token);
    put32(m + 16, (uint32_t)W.rank);
    put32(m + 20, w ? w->phase : 0);
    put64(m + 24, w ? w->step : 0);
    put64(m + 32, bits(w ? w->seconds : 0));
    struct sockaddr_in a;
    if (peer_addr(to, &a) == 0) sendto(W.sock, m, sizeof m, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a);
}

/* Reads the datagrams waiting: answers every question, keeps every answer
 * in got (if not NULL). */
static void drain(Where *got) {
    uint8_t m[MSG_BYTES + 1];
    for (;;) {
        ssize_t n = recv(W.sock, m, sizeof m, MSG_DONTWAIT);
        if (n < 0) return;
        if (n != MSG_BYTES || memcmp(m, "SMWD", 4) || m[4] != 1 || get64(m + 8) != W.token) continue;
        uint32_t from = get32(m + 16);
        if (from >= (uint32_t)W.world || from == (uint32_t)W.rank) continue;
        if (m[5] == 1) {
            double lasted, limit;
            Where me = own(&lasted, &limit);
            send_msg((int)from, 2, &me);
        } else if (m[5] == 2 && got) {
            got[from] = (Where){1, get32(m + 20), get64(m + 24), unbits(get64(m + 32))};
        }
    }
}

/* ---- the verdict ------------------------------------------------------------ */

/* Appends "rank 3" / "ranks 0-2, 5" for the ranks r with pick[r]. */
static size_t list_ranks(char *out, size_t cap, const unsigned char *pick) {
    size_t len = 0;
    int count = 0, n = 0;
    for (int r = 0; r < W.world; r++) count += pick[r];
    for (int r = 0; r < W.world && len + 32 < cap; r++) {
        if (!pick[r]) continue;
        int last = r;
        while (last + 1 < W.world && pick[last + 1]) last++;
        len += (size_t)snprintf(out + len, cap - len, "%s%d", n++ ? ", " : count > 1 ? "ranks " : "rank ", r);
        if (last > r) len += (size_t)snprintf(out + len, cap - len, "-%d", last);
        r = last;
    }
    return len;
}

static uint64_t position(const Where *w) { return w->step * WD_NPHASES + w->phase; }

/* "data of step 13" (steps counted from 1, as the progress lines do), or
 * the phase alone outside the steps. */
static void where_text(char *out, size_t n, const Where *w) {
    if (w->phase == WD_STARTUP || w->phase == WD_EVAL || w->phase == WD_END)
        snprintf(out, n, "%s", phase_names[w->phase]);
    else
        snprintf(out, n, "%s of step %llu", phase_names[w->phase], (unsigned long long)w->step + 1);
}

/* The limit has passed: ask every rank where it is (three tries over 1.5 s),
 * print one line and end the job. Does not return. */
static void fire(double lasted, double limit, Where me) {
    Where *got = xcalloc((size_t)W.world, sizeof *got);
    got[W.rank] = me;
    if (W.world > 1) {
        double t0 = now_seconds();
        int missing = W.world - 1;
        for (int round = 0; round < 3 && missing; round++) {
            for (int r = 0; r < W.world; r++)
                if (r != W.rank && !got[r].known) send_msg(r, 1, NULL);
            while (missing && now_seconds() < t0 + 0.5 * (round + 1)) {
                struct pollfd pf = {W.sock, POLLIN, 0};
                poll(&pf, 1, 50);
                drain(got);
                missing = 0;
                for (int r = 0; r < W.world; r++) missing += !got[r].known;
            }
        }
    }
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int r = 0; r < W.world; r++)
        if (got[r].known) lo = MIN(lo, position(&got[r])), hi = MAX(hi, position(&got[r]));
    unsigned char *pick = xcalloc((size_t)W.world, 1);
    char msg[2048];
    char here[96];
    if (step_phase(me.phase))
        snprintf(here, sizeof here, "step %llu has lasted %.1f s on this rank (now in %s)",
                 (unsigned long long)me.step + 1, lasted, phase_names[me.phase]);
    else
        snprintf(here, sizeof here, "the %s has lasted %.1f s on this rank", phase_names[me.phase], lasted);
    size_t len = (size_t)snprintf(
        msg, sizeof msg, "%s stopped making progress: %s, beyond the limit of %.1f s (%s); ",
        W.world > 1 ? "a rank" : "the run", here, limit,
        step_phase(me.phase) ? "max([dist] timeout, 10 x the median step)" : "[dist] timeout");
    int silent = 0;
    for (int r = 0; r < W.world; r++) silent += pick[r] = !got[r].known;
    if (silent) {
        len += (size_t)snprintf(msg + len, sizeof msg - len, "late: ");
        len += list_ranks(msg + len, sizeof msg - len, pick);
        len += (size_t)snprintf(msg + len, sizeof msg - len, " (no answer: stopped, dead or unreachable); ");
    }
    /* The others, grouped by where they are, the furthest behind first:
     * behind the rest means late; all at one place, nobody is. */
    for (uint64_t at = lo; W.world > 1 && lo <= hi && len < sizeof msg - 64;) {
        Where *w = NULL;
        for (int r = 0; r < W.world; r++) {
            pick[r] = got[r].known && position(&got[r]) == at;
            if (pick[r] && !w) w = &got[r];
        }
        const char *what = at == lo && lo < hi ? "late: "
                           : silent || lo < hi ? "waiting: "
                                               : "no rank is behind: ";
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s", what);
        len += list_ranks(msg + len, sizeof msg - len, pick);
        where_text(here, sizeof here, w);
        len += (size_t)snprintf(msg + len, sizeof msg - len, " in %s (%.1f s); ", here, w->seconds);
        uint64_t next = UINT64_MAX;
        for (int r = 0; r < W.world; r++)
            if (got[r].known && position(&got[r]) > at) next = MIN(next, position(&got[r]));
        if (next == UINT64_MAX) break;
        at = next;
    }
    if (len < sizeof msg)
        snprintf(msg + len, sizeof msg - len,
                 "ending the job with exit status %d; raise [dist] timeout if the "
                 "work is just slow",
                 WATCHDOG_EXIT);
    char line[2200];
    int n = W.world > 1 ? snprintf(line, sizeof line, "siamese: [rank %d] %s\n", W.rank, msg)
                        : snprintf(line, sizeof line, "siamese: %s\n", msg);
    fflush(stdout);
    ssize_t wr = write(STDERR_FILENO, line, (size_t)MIN(n, (int)sizeof line - 1));
    (void)wr;
    dist_abort(WATCHDOG_EXIT);
}

static void *watchdog_main(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        double lasted, limit;
        Where me = own(&lasted, &limit);
        if (lasted > limit) {
            fire(lasted, limit, me);
            return NULL;
        }
        /* Sleep until the limit could pass (at most 1 s: the median moves),
         * waking for questions and for watchdog_stop. */
        int ms = (int)fmin(1000, fmax(10, (limit - lasted) * 1000 + 5));
        struct pollfd pf[2] = {{W.wake[0], POLLIN, 0}, {W.sock, POLLIN, 0}};
        double t0 = now_seconds();
        int n = poll(pf, W.sock >= 0 ? 2 : 1, ms);
        /* A wait of at most 1 s that took 2 s longer: the process was
         * stopped (a thread of a running process is not held up that long
         * past its wake-up). The whole wait is left out of the steps' time
         * (the stop may have begun as it began). */
        double gap = now_seconds() - t0;
        if (gap > ms / 1000.0 + 2)
            atomic_store_explicit(&W.paused,
                                  bits(unbits(atomic_load_explicit(&W.paused, memory_order_relaxed)) + gap),
                                  memory_order_relaxed);
        if (n > 0 && pf[0].revents) return NULL;
        if (n > 0 && W.sock >= 0 && pf[1].revents) drain(NULL);
    }
}

/* ---- start and stop ----------------------------------------------------------- */

int watchdog_start(double timeout_s, Err *e) {
    ASSERT(!W.on);
    if (!(timeout_s > 0)) return 0;
    memset(&W, 0, sizeof W);
    W.rank = dist_rank();
    W.world = dist_world();
    W.timeout = timeout_s;
    W.sock = -1;
    gethostname(W.host, sizeof W.host - 1);
    int bad = 0;
    char why[256] = "";
    uint16_t port = 0;
    if (W.world > 1) {
        W.sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY), .sin_port = 0};
        socklen_t al = sizeof a;
        if (W.sock < 0 || bind(W.sock, (struct sockaddr *)&a, sizeof a) ||
            getsockname(W.sock, (struct sockaddr *)&a, &al)) {
            bad = 1;
            snprintf(why, sizeof why, "cannot open its UDP socket: %s", strerror(errno));
        }
        port = ntohs(a.sin_port);
    }
    if (pipe(W.wake)) bad = 1, snprintf(why, sizeof why, "pipe: %s", strerror(errno));
    if (dist_any(bad)) {
        if (W.sock >= 0) close(W.sock);
        return err_set(e, "the watchdog ([dist] timeout) %s",
                       why[0] ? why : "could not start on another rank");
    }
    if (W.world > 1) {
        /* (host, port) of every rank, and rank 0's token for the job. */
        uint8_t row[HOST_MAX + 2], *all = xmalloc((size_t)W.world * sizeof row);
        memcpy(row, W.host, HOST_MAX);
        row[HOST_MAX] = (uint8_t)port, row[HOST_MAX + 1] = (uint8_t)(port >> 8);
        int *ones = xmalloc((size_t)W.world * sizeof *ones);
        for (int r = 0; r < W.world; r++) ones[r] = 1;
        dist_allgather_rows(all, row, sizeof row, ones);
        W.peers = xcalloc((size_t)W.world, sizeof *W.peers);
        for (int r = 0; r < W.world; r++) {
            memcpy(W.peers[r].host, all + r * sizeof row, HOST_MAX);
            W.peers[r].host[HOST_MAX - 1] = 0;
            W.peers[r].port =
                (uint16_t)(all[r * sizeof row + HOST_MAX] | all[r * sizeof row + HOST_MAX + 1] << 8);
        }
        free(all);
        free(ones);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        W.token = hash64(&ts, sizeof ts, HASH64_INIT ^ (uint64_t)getpid());
        dist_bcast_bytes(&W.token, sizeof W.token);
    }
    W.on = 1;
    watchdog_phase(WD_STARTUP);
    atomic_store_explicit(&W.step_start, atomic_load(&W.phase_start), memory_order_relaxed);
    if (pthread_create(&W.thread, NULL, watchdog_main, NULL)) FATAL("watchdog: cannot start its thread");
    return 0;
}

void watchdog_stop(void) {
    if (!W.on) return;
    ssize_t wr = write(W.wake[1], "x", 1);
    (void)wr;
    pthread_join(W.thread, NULL);
    close(W.wake[0]);
    close(W.wake[1]);
    if (W.sock >= 0) close(W.sock);
    free(W.peers);
    W.peers = NULL;
    W.on = 0;
}

/* flow: see flow.h. Residual graph as edge pairs (2k forward, 2k + 1
 * reverse); Dijkstra over reduced costs c(u, v) + pi(u) - pi(v) >= 0 with a
 * binary heap of (distance, node) entries and lazy deletion. */
#include "flow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/util.h"

void flow_init(Flow *f, int nodes) {
    ASSERT(nodes > 0);
    memset(f, 0, sizeof *f);
    f->nodes = nodes;
    f->head = xmalloc(sizeof(int) * (size_t)nodes);
    for (int i = 0; i < nodes; i++) f->head[i] = -1;
}

void flow_free(Flow *f) {
    free(f->e);
    free(f->head);
    memset(f, 0, sizeof *f);
}

int flow_add_edge(Flow *f, int u, int v, int cap, double cost) {
    ASSERT(u >= 0 && u < f->nodes && v >= 0 && v < f->nodes && cap >= 0 && isfinite(cost));
    if (f->nedges + 2 > f->cap_edges) {
        f->cap_edges = MAX(64, 2 * f->cap_edges);
        f->e = xrealloc(f->e, sizeof(FlowEdge) * (size_t)f->cap_edges);
    }
    int k = f->nedges;
    f->e[k] = (FlowEdge){.to = v, .next = f->head[u], .cap = cap, .cost = cost};
    f->head[u] = k;
    f->e[k + 1] = (FlowEdge){.to = u, .next = f->head[v], .cap = 0, .cost = -cost};
    f->head[v] = k + 1;
    f->nedges += 2;
    return k / 2;
}

int flow_edge_flow(const Flow *f, int k) { return f->e[2 * k + 1].cap; }

/* Shortest distances from s over edges with capacity: in node order when the
 * graph is a DAG in that order, else Bellman-Ford (fatal on a negative
 * cycle). Unreachable nodes get 0, which keeps their reduced costs from
 * mattering (no path through them exists yet). */
static void initial_potentials(const Flow *f, int s, double *pi) {
    int n = f->nodes, forward = 1;
    for (int k = 0; k < f->nedges; k += 2) {
        int u = f->e[k + 1].to, v = f->e[k].to;
        if (f->e[k].cap > 0 && v <= u) forward = 0;
    }
    for (int i = 0; i < n; i++) pi[i] = INFINITY;
    pi[s] = 0;
    if (forward) {
        for (int u = s; u < n; u++) {
            if (pi[u] == INFINITY) continue;
            for (int k = f->head[u]; k >= 0; k = f->e[k].next)
                if (f->e[k].cap > 0 && pi[u] + f->e[k].cost < pi[f->e[k].to])
                    pi[f->e[k].to] = pi[u] + f->e[k].cost;
        }
    } else {
        for (int round = 0;; round++) {
            int changed = 0;
            for (int u = 0; u < n; u++) {
                if (pi[u] == INFINITY) continue;
                for (int k = f->head[u]; k >= 0; k = f->e[k].next)
                    if (f->e[k].cap > 0 && pi[u] + f->e[k].cost < pi[f->e[k].to])
                        pi[f->e[k].to] = pi[u] + f->e[k].cost, changed = 1;
            }
            if (!changed) break;
            if (round >= n) FATAL("min-cost flow: the graph has a negative cycle");
        }
    }
    for (int i = 0; i < n; i++)
        if (pi[i] == INFINITY) pi[i] = 0;
}

typedef struct HeapItem {
    double d;
    int node;
} HeapItem;

static void heap_push(HeapItem *h, int *n, HeapItem x) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p].d <= x.d) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static HeapItem heap_pop(HeapItem *h, int *n) {
    HeapItem top = h[0], x = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].d < h[c].d) c++;
        if (h[c].d >= x.d) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = x;
    return top;
}

int flow_min_cost(Flow *f, int s, int t, int max_flow, int stop_at_nonnegative, double *cost) {
    int n = f->nodes;
    double *pi = xmalloc(sizeof(double) * (size_t)n), *dist = xmalloc(sizeof(double) * (size_t)n);
    int *prev = xmalloc(sizeof(int) * (size_t)n); /* edge into each node on the shortest path */
    HeapItem *heap = xmalloc(sizeof(HeapItem) * ((size_t)f->nedges + 1));
    char *done = xmalloc((size_t)n);
    initial_potentials(f, s, pi);
    int sent = 0;
    double total = 0;
    while (sent < max_flow) {
        for (int i = 0; i < n; i++) dist[i] = INFINITY, prev[i] = -1, done[i] = 0;
        int hn = 0;
        dist[s] = 0;
        heap_push(heap, &hn, (HeapItem){0, s});
        while (hn > 0) {
            HeapItem it = heap_pop(heap, &hn);
            int u = it.node;
            if (done[u]) continue;
            done[u] = 1;
            for (int k = f->head[u]; k >= 0; k = f->e[k].next) {
                if (f->e[k].cap <= 0) continue;
                int v = f->e[k].to;
                /* reduced cost, >= 0 up to rounding; clamp the rounding away */
                double rc = MAX(0.0, f->e[k].cost + pi[u] - pi[v]);
                if (dist[u] + rc < dist[v]) {
                    dist[v] = dist[u] + rc;
                    prev[v] = k;
                    heap_push(heap, &hn, (HeapItem){dist[v], v});
                }
            }
        }
        if (dist[t] == INFINITY) break;
        /* the path's real cost, and its bottleneck */
        double pc = 0;
        int push = max_flow - sent;
        for (int v = t; v != s; v = f->e[prev[v] ^ 1].to) {
            pc += f->e[prev[v]].cost;
            push = MIN(push, f->e[prev[v]].cap);
        }
        if (stop_at_nonnegative && pc >= 0) break;
        for (int v = t; v != s; v = f->e[prev[v] ^ 1].to) {
            f->e[prev[v]].cap -= push;
            f->e[prev[v] ^ 1].cap += push;
        }
        sent += push;
        total += pc * push;
        for (int i = 0; i < n; i++)
            if (dist[i] < INFINITY) pi[i] += dist[i];
    }
    free(pi);
    free(dist);
    free(prev);
    free(heap);
    free(done);
    if (cost) *cost = total;
    return sent;
}

double flow_tracks(int *next, char *used, int n, const double *det, const double *entry, const double *exit_,
                   const FlowLink *links, int nlinks) {
    /* nodes: source 0, detection i in 1 + 2i and out 2 + 2i, sink 2n + 1; every
     * edge goes to a higher node, so the first potentials need one pass */
    Flow f;
    flow_init(&f, 2 * n + 2);
    int sink = 2 * n + 1;
    int *det_edge = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        flow_add_edge(&f, 0, 1 + 2 * i, 1, entry[i]);
        det_edge[i] = flow_add_edge(&f, 1 + 2 * i, 2 + 2 * i, 1, det[i]);
        flow_add_edge(&f, 2 + 2 * i, sink, 1, exit_[i]);
    }
    int first_link = f.nedges / 2;
    for (int k = 0; k < nlinks; k++) {
        ASSERT(links[k].from >= 0 && links[k].from < links[k].to && links[k].to < n);
        flow_add_edge(&f, 2 + 2 * links[k].from, 1 + 2 * links[k].to, 1, links[k].cost);
    }
    double cost;
    flow_min_cost(&f, 0, sink, n, 1, &cost);
    for (int i = 0; i < n; i++) {
        next[i] = -1;
        used[i] = (char)flow_edge_flow(&f, det_edge[i]);
    }
    for (int k = 0; k < nlinks; k++)
        if (flow_edge_flow(&f, first_link + k)) next[links[k].from] = links[k].to;
    free(det_edge);
    flow_free(&f);
    return cost;
}

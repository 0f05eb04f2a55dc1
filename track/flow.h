/* flow: exact minimum-cost flow by successive shortest paths (Dijkstra on
 * reduced costs with node potentials; the first potentials from a pass in
 * node order when every edge goes to a higher node, as in the tracking
 * graph, else Bellman-Ford). Integer capacities, real costs, no negative
 * cycles in the input. The batch tracker builds its network here: source,
 * a node pair per detection, sink (Zhang, Li and Nevatia 2008). */
#ifndef SIAMESE_FLOW_H
#define SIAMESE_FLOW_H

typedef struct FlowEdge {
    int to, next; /* head node; next edge out of the same tail (-1 ends) */
    int cap;      /* residual capacity */
    double cost;
} FlowEdge;

typedef struct Flow {
    int nodes, nedges, cap_edges;
    FlowEdge *e; /* edge 2k is the k-th added edge, 2k+1 its reverse */
    int *head;   /* first edge out of each node, -1 if none */
} Flow;

void flow_init(Flow *f, int nodes);
void flow_free(Flow *f);

/* Adds edge u -> v (0 <= u, v < nodes) with capacity cap >= 0 and a finite
 * cost; returns its index k for flow_edge_flow. */
int flow_add_edge(Flow *f, int u, int v, int cap, double cost);

/* Sends flow from s to t along successive shortest paths, at most max_flow
 * units; with stop_at_nonnegative, stops before the first path whose cost is
 * >= 0, which gives the minimum cost over every flow amount (path costs never
 * decrease). Each path carries its bottleneck capacity. Returns the flow
 * sent; *cost its total cost. Fatal if the input has a negative cycle. */
int flow_min_cost(Flow *f, int s, int t, int max_flow, int stop_at_nonnegative, double *cost);

/* Flow on the k-th added edge. */
int flow_edge_flow(const Flow *f, int k);

/* ---- the tracking network -------------------------------------------------- */

/* A possible link: detection `to` follows detection `from` in one track. */
typedef struct FlowLink {
    int from, to; /* from < to: detections are numbered in time order */
    double cost;
} FlowLink;

/* Links n detections into disjoint tracks at the least total cost: a track
 * i1 -> i2 -> ... -> ik costs entry[i1] + sum det[i] + sum link costs +
 * exit[ik]; detections in no track cost nothing. Min-cost flow over source,
 * (in, out) node pair per detection and sink, every capacity 1, stopped at the
 * first path of non-negative cost: the exact optimum over any number of
 * tracks. next[i] is the detection after i in its track (-1: last or unused),
 * used[i] whether i is in a track. Returns the total cost. */
double flow_tracks(int *next, char *used, int n, const double *det, const double *entry, const double *exit_,
                   const FlowLink *links, int nlinks);

#endif

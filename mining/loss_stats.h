/* loss_stats: what every loss of mining/ returns for one rank's share of the
 * work (its anchors, pairs or triplets). Stats of several ranks (or of several
 * anchor ranges) add up field by field; the loss is loss_sum / count of the
 * sums. Header only; no loss is computed here. */
#ifndef SIAMESE_LOSS_STATS_H
#define SIAMESE_LOSS_STATS_H

typedef struct LossStats {
    double loss_sum;     /* sum of the terms that enter the mean */
    double count;        /* this share of the normaliser (see each loss) */
    long active;         /* terms with a non-zero loss */
    long candidates;     /* terms the miner chose from (see each loss) */
    double hardness_sum; /* sum of a hardness measure over the counted terms */
} LossStats;

#define LOSS_STATS_DOUBLES 5

static inline void loss_stats_add(LossStats *acc, const LossStats *s) {
    acc->loss_sum += s->loss_sum;
    acc->count += s->count;
    acc->active += s->active;
    acc->candidates += s->candidates;
    acc->hardness_sum += s->hardness_sum;
}

/* Packs into / unpacks from LOSS_STATS_DOUBLES doubles, for one allreduce
 * (counts stay exact below 2^53). */
static inline void loss_stats_pack(double *out, const LossStats *s) {
    out[0] = s->loss_sum;
    out[1] = s->count;
    out[2] = (double)s->active;
    out[3] = (double)s->candidates;
    out[4] = s->hardness_sum;
}

static inline LossStats loss_stats_unpack(const double *in) {
    LossStats s = {in[0], in[1], (long)in[2], (long)in[3], in[4]};
    return s;
}

/* Mean loss and mean hardness; 0 when nothing was counted. */
static inline double loss_stats_mean(const LossStats *s) {
    return s->count > 0 ? s->loss_sum / s->count : 0.0;
}
static inline double loss_stats_mean_hardness(const LossStats *s) {
    return s->count > 0 ? s->hardness_sum / s->count : 0.0;
}

#endif

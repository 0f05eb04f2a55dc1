/* norm: the input normalisation of images, per channel: x = (pixel / 255 -
 * mean[c]) / std[c] for channel c of a (C, H, W) sample. Resolves the config
 * ([data] mean and std: "0" for the training set's own statistics, one
 * number for every channel, or one per channel, comma-separated) against a
 * dataset's per-channel statistics, and reads and writes the comma-separated
 * lists that checkpoints and exports store. */
#ifndef SIAMESE_NORM_H
#define SIAMESE_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "../nn/util.h"

#define NORM_MAX_CHANNELS 16 /* = DS_MAX_CHANNELS */

typedef struct Norm {
    int channels;
    float mean[NORM_MAX_CHANNELS], std[NORM_MAX_CHANNELS];
} Norm;

/* Parses "v" or "v1,v2,...": 1..NORM_MAX_CHANNELS numbers in [min, max].
 * Returns how many, or -1 on anything else. */
int norm_parse_list(const char *text, double min, double max, float *out);

/* "v1,v2,..." with %.9g (what norm_parse_list reads back exactly). */
void norm_format(char *buf, size_t cap, const float *v, int n);

/* The normalisation of a `channels`-channel input from the config's mean and
 * std texts: "0" takes ds_mean / ds_std (a std of 0, a constant channel,
 * becomes 1), one number applies to every channel, `channels` numbers one
 * each. `where` names the config in messages. -1 with e for a malformed list,
 * a count that fits neither, or a std that is not > 0. */
int norm_resolve(Norm *out, const char *mean_text, const char *std_text, int channels, const float *ds_mean,
                 const float *ds_std, const char *where, Err *e);

/* One value for every channel (grey inputs, old checkpoints). */
void norm_uniform(Norm *out, int channels, float mean, float std);

/* in (from a checkpoint: one number, as grey models store, or one per
 * channel) for a `channels`-channel model into out; -1 with e naming path
 * when in has another count. */
int norm_fit(Norm *out, const Norm *in, int channels, const char *path, Err *e);

/* x (C, plane) from pixels (C, plane) of one sample. */
void norm_apply(float *x, const uint8_t *px, const Norm *n, size_t plane);

/* The 256-entry table of channel c: table[v] = (v / 255 - mean[c]) / std[c]
 * in float, the exact value norm_apply computes. */
void norm_table(float *table /* (256) */, const Norm *n, int c);

#endif

/* layer_spec: what a config says about one encoder layer, and the weight
 * initialisation schemes. Plain data shared by io/config (which fills it)
 * and nn/model (which builds from it), so nn does not depend on io. */
#ifndef SIAMESE_LAYER_SPEC_H
#define SIAMESE_LAYER_SPEC_H

typedef enum {
    LAYER_CONV2D, LAYER_MAXPOOL, LAYER_RELU, LAYER_SIGMOID, LAYER_LINEAR,
    LAYER_FLATTEN, LAYER_L2NORM, LAYER_NTYPES
} LayerType;

typedef struct LayerCfg {
    int type;           /* LayerType */
    char name[32];      /* "conv1"; default: type + index */
    int line;           /* line of the section header, for errors */
    long filters, size, stride, pad; /* conv2d; maxpool uses size/stride */
    long out;           /* linear */
    double lr_mult, decay_mult, l2;
} LayerCfg;

/* he: N(0, 2/fan_in), bias 0; koch: conv N(0, 1e-2), dense N(0, 0.2), biases
 * N(0.5, 1e-2) (Koch et al. 2015); torch: PyTorch's default U(+-1/sqrt(fan_in))
 * for weights and biases. */
enum { INIT_HE, INIT_KOCH, INIT_TORCH };

extern const char *const layer_type_names[LAYER_NTYPES];

#endif

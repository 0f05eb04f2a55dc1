/* layer_list: every layer type, as X(ENUM_SUFFIX, section_name). The
 * LayerType enum (nn/layer_spec.h) and the registry table (nn/layer_table.c)
 * are both built from this list, so they cannot disagree; the row of type
 * `name` is the LayerDef `layer_name` (in one of nn/layers_*.c). Adding a
 * layer adds one line here. */
#ifndef SIAMESE_LAYER_LIST_H
#define SIAMESE_LAYER_LIST_H

#define LAYER_LIST(X)                                                                                        \
    X(CONV2D, conv2d)                                                                                        \
    X(MAXPOOL, maxpool)                                                                                      \
    X(RELU, relu)                                                                                            \
    X(SIGMOID, sigmoid)                                                                                      \
    X(LINEAR, linear)                                                                                        \
    X(FLATTEN, flatten)                                                                                      \
    X(L2NORM, l2norm)                                                                                        \
    X(CONCAT, concat)                                                                                        \
    X(ADD, add)                                                                                              \
    X(DIFFERENCE, difference)                                                                                \
    X(ABSDIFF, absdiff)                                                                                      \
    X(CORRELATION, correlation)                                                                              \
    X(BATCHNORM, batchnorm)                                                                                  \
    X(UPSAMPLE, upsample)                                                                                    \
    X(DECONV2D, deconv2d)                                                                                    \
    X(AVGPOOL, avgpool)                                                                                      \
    X(DROPOUT, dropout)                                                                                      \
    X(LEAKY_RELU, leaky_relu)                                                                                \
    X(TANH, tanh)                                                                                            \
    X(SOFTMAX, softmax)

#endif

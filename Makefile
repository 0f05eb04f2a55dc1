# siamese-mpi build. `make` builds ./siamese; `make test` runs every test;
# `make demo` imports Fashion-MNIST and trains; `make deps` installs Debian
# packages. Sources are found by wildcard: a new module needs no edit here.

CC       = mpicc
OPT     ?= -O3
ARCH    ?= -march=native
CFLAGS  ?= $(OPT) $(ARCH)
CFLAGS  += -std=c11 -D_GNU_SOURCE -fno-math-errno -Wall -Wextra -Werror -MMD -MP -g \
           -I/usr/include/x86_64-linux-gnu/openblas-pthread
LDLIBS   = -lopenblas -llmdb -lz -linih -lpng -ljpeg -lpthread -lm
BUILD   ?= build

ifeq ($(SANITIZE),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD   := build-san
endif

LIB_SRC  = $(wildcard nn/*.c mining/*.c io/*.c dist/*.c track/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/test_*.c tests/mpi_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps demo test test-build bench clean format
.SECONDARY:

all: siamese

siamese: $(BUILD)/siamese.o $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libsiamese.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test-build: siamese $(TEST_BIN) $(BENCH_BIN)

# deps first (a fresh machine has nothing), then build, then every test.
# The PyTorch parity test needs Debian's python3-torch.
test:
	DEPS_EXTRA="python3-torch python3-numpy" bash .ci/deps.sh
	$(MAKE) test-build
	BUILD=$(BUILD) bash tests/run.sh

bench: siamese $(BENCH_BIN)

# The demo: Fashion-MNIST from Debian's dataset-fashion-mnist into LMDB,
# then the default triplet recipe on 2 ranks and its evaluation.
FMNIST  ?= /usr/share/datasets/fashion-mnist
DATA    ?= data
NP      ?= 2
ROOTENV  = $(if $(filter 0,$(shell id -u)),OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1,)
MPIRUN   = $(ROOTENV) OPENBLAS_NUM_THREADS=1 mpirun -np $(NP) --oversubscribe
demo: deps
	$(MAKE) siamese
	@mkdir -p $(DATA)
	@test -d $(DATA)/fmnist-train.lmdb || ./siamese import --format idx --out $(DATA)/fmnist-train.lmdb \
	    --images $(FMNIST)/train-images-idx3-ubyte.gz --labels $(FMNIST)/train-labels-idx1-ubyte.gz
	@test -d $(DATA)/fmnist-test.lmdb || ./siamese import --format idx --out $(DATA)/fmnist-test.lmdb \
	    --images $(FMNIST)/t10k-images-idx3-ubyte.gz --labels $(FMNIST)/t10k-labels-idx1-ubyte.gz
	$(MPIRUN) ./siamese train configs/fmnist-triplet.ini --resume auto \
	    --set data.train=$(DATA)/fmnist-train.lmdb --set data.test=$(DATA)/fmnist-test.lmdb

deps:
	@bash .ci/deps.sh

format:
	clang-format -i $(wildcard *.c */*.c */*.h)

clean:
	rm -rf build build-san siamese

-include $(LIB_OBJ:.o=.d) $(BUILD)/siamese.d $(TEST_BIN:=.d) $(BENCH_BIN:=.d)

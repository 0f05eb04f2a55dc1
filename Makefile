# siamese-mpi build. `make` builds ./siamese; `make test` runs every test;
# `make demo` imports Fashion-MNIST and trains; `make deps` installs Debian
# packages. Sources are found by wildcard (nn mining io viz dist track): a new
# module of those directories needs no edit here.

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

LIB_SRC  = $(wildcard nn/*.c mining/*.c io/*.c viz/*.c dist/*.c track/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/test_*.c tests/mpi_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_SRC  = $(wildcard fuzz/fuzz_*.c)
# The harnesses built with the project's compiler and a file-replaying main,
# so `make test` replays the fuzz corpus (tests/e2e_fuzz_replay.sh).
REPLAY_BIN = $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/replay_%)

.PHONY: all deps demo omniglot test test-build bench clean format fuzz fuzz-build fuzz-seeds
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

# The test programs and build/siamese-test (the siamese of the end-to-end
# tests) link the test seams (tests/fixture_hooks.c: fault injection, kill
# and signal at a step); the siamese users run has none.
TEST_HOOKS = $(BUILD)/tests/fixture_hooks.o

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HOOKS) $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/siamese-test: $(BUILD)/siamese.o $(TEST_HOOKS) $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/replay_%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/replay_main.o $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test-build: siamese $(BUILD)/siamese-test $(TEST_BIN) $(BENCH_BIN) $(REPLAY_BIN)

# deps first (a fresh machine has nothing), then build, then every test.
# The PyTorch parity test needs Debian's python3-torch; the report's browser
# test (tests/e2e_report.sh) headless Chromium, its driver, Selenium and PIL.
test:
	DEPS_EXTRA="python3-torch python3-numpy chromium chromium-driver python3-selenium python3-pil" bash .ci/deps.sh
	$(MAKE) test-build
	BUILD=$(BUILD) bash tests/run.sh

# Coverage-guided fuzzing (docs/testing.md): every fuzz/fuzz_*.c harness
# built with clang's libFuzzer, ASan and UBSan into build-fuzz/, the library
# without dist/ (no MPI) but for its checkpoint checks, then fuzz/run.sh runs each for FUZZ_SECONDS
# (default 60) under a memory limit, starting from fuzz/corpus/NAME. CI runs
# `make fuzz FUZZ_SECONDS=20`. Needs Debian's clang-14 and libclang-rt-14-dev.
FUZZ_CC     ?= clang-14
FUZZ_BUILD   = build-fuzz
FUZZ_CFLAGS  = -O1 -g $(ARCH) -std=c11 -D_GNU_SOURCE -fno-math-errno -Wall -Wextra -Werror -MMD -MP \
               -I/usr/include/x86_64-linux-gnu/openblas-pthread -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(wildcard nn/*.c mining/*.c io/*.c) dist/ckpt_check.c)
FUZZ_BIN     = $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/fuzz/%)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/libfuzzsiamese.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz/%: $(FUZZ_BUILD)/fuzz/%.o $(FUZZ_BUILD)/libfuzzsiamese.a
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

fuzz-build:
	@DEPS_EXTRA="clang-14 libclang-rt-14-dev" bash .ci/deps.sh
	$(MAKE) $(FUZZ_BIN)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) bash fuzz/run.sh

# Rewrites the seed corpora fuzz/corpus/ (committed) from fuzz/seeds.c.
fuzz-seeds: $(BUILD)/fuzz/seeds
	$(BUILD)/fuzz/seeds

$(BUILD)/fuzz/seeds: $(BUILD)/fuzz/seeds.o $(BUILD)/libsiamese.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

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

# Omniglot one-shot (docs/omniglot.md): the background set at 28x28 (three
# alphabets held out for validation), the evaluation set, the fast recipe
# on NP ranks, then Koch's protocol and all 20 evaluation alphabets scored
# with the best validated model, and Koch's protocol again with test-time
# augmentation. OMNIGLOT_DIR holds images_background/ and
# images_evaluation/ as unpacked from the official archives. Run it again
# and it resumes; a finished run is only scored again.
OMNIGLOT_DIR ?=
RUNS     ?= runs
OMNIGLOT_SETS ?=
OMNI_RUN  = $(RUNS)/omniglot-28
# Test-time augmentation of the last evaluation: 16 views, every distortion on.
OMNI_TTA  = --tta 16 --tta-set augment.rotate_p=1 --tta-set augment.shear_p=1 --tta-set augment.scale_p=1 \
	    --tta-set augment.translate_p=1
omniglot:
	@test -n "$(OMNIGLOT_DIR)" && test -d "$(OMNIGLOT_DIR)/images_background" && test -d "$(OMNIGLOT_DIR)/images_evaluation" || \
	    { echo "make omniglot: set OMNIGLOT_DIR to a folder holding images_background/ and images_evaluation/ (the official archives, unpacked)"; exit 2; }
	@$(MAKE) --no-print-directory siamese
	@mkdir -p $(DATA)
	test -d $(DATA)/omniglot-train-28rm.lmdb || ./siamese import --format omniglot --root $(OMNIGLOT_DIR)/images_background \
	    --resize 28x28 --invert --rotations 4 --mirror --split-by group --test-fraction 0.1 --seed 1 \
	    --out $(DATA)/omniglot-train-28rm.lmdb --test-out $(DATA)/omniglot-val-28rm.lmdb
	test -d $(DATA)/omniglot-eval-28.lmdb || ./siamese import --format omniglot --root $(OMNIGLOT_DIR)/images_evaluation \
	    --resize 28x28 --invert --out $(DATA)/omniglot-eval-28.lmdb
	$(MPIRUN) ./siamese train configs/omniglot-28.ini --resume auto --set run.dir=$(OMNI_RUN) \
	    --set data.train=$(DATA)/omniglot-train-28rm.lmdb --set eval.data=$(DATA)/omniglot-val-28rm.lmdb $(OMNIGLOT_SETS)
	./siamese eval $(OMNI_RUN)/best.smpi --data $(DATA)/omniglot-eval-28.lmdb --protocol koch --trials 4000 \
	    --json $(OMNI_RUN)/koch.json
	./siamese eval $(OMNI_RUN)/best.smpi --data $(DATA)/omniglot-eval-28.lmdb --within-group --drawings paired \
	    --nway 20 --kshot 1 --trials 4000 --json $(OMNI_RUN)/all20.json
	./siamese eval $(OMNI_RUN)/best.smpi --data $(DATA)/omniglot-eval-28.lmdb --protocol koch --trials 4000 \
	    $(OMNI_TTA) --json $(OMNI_RUN)/koch-tta.json

deps:
	@bash .ci/deps.sh

format:
	clang-format -i $(wildcard *.c */*.c */*.h)

clean:
	rm -rf build build-san build-fuzz siamese

-include $(TEST_HOOKS:.o=.d) $(LIB_OBJ:.o=.d) $(BUILD)/siamese.d $(TEST_BIN:=.d) $(BENCH_BIN:=.d) $(FUZZ_LIB_OBJ:.o=.d) \
         $(FUZZ_BIN:=.d) $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%.d)

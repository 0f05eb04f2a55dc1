# siamese-mpi build. `make` builds ./siamese; `make test` runs every test;
# `make demo` imports Fashion-MNIST and trains; `make deps` installs Debian
# packages. Sources are found by wildcard: a new module needs no edit here.

CC       = mpicc
OPT     ?= -O3
ARCH    ?= -march=native
CFLAGS  ?= $(OPT) $(ARCH)
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP -g \
           -I/usr/include/x86_64-linux-gnu/openblas-pthread
LDLIBS   = -lopenblas -llmdb -lz -linih -lpng -lpthread -lm
BUILD   ?= build

ifeq ($(SANITIZE),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD   := build-san
endif

LIB_SRC  = $(wildcard nn/*.c mining/*.c io/*.c dist/*.c)
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
test: deps
	$(MAKE) test-build
	BUILD=$(BUILD) bash tests/run.sh

bench: siamese $(BENCH_BIN)

demo: deps
	$(MAKE) siamese
	bash tests/../configs/demo.sh

deps:
	@bash .ci/deps.sh

format:
	clang-format -i $(wildcard *.c */*.c */*.h)

clean:
	rm -rf build build-san siamese

-include $(LIB_OBJ:.o=.d) $(BUILD)/siamese.d $(TEST_BIN:=.d) $(BENCH_BIN:=.d)

# pingmachine build, test and benchmark entry points. `make test` is what CI runs.

GO      ?= go
PREFIX  ?= /usr/local
DESTDIR ?=
UNITDIR ?= /etc/systemd/system
BIN     := bin/pingmachine
# Debian packages the tests use (gcc for the cgo build that must refuse to run holding
# capabilities, chromium for the web pages, prometheus and its promtool for /metrics,
# influxdb for the telegraf stream, dnsmasq and openssh-server for the DNS and ssh probes,
# lintian, ansible and what they need for the packages and the role); .ci/deps installs
# those that are missing.
DEBS    := gcc libc6-dev fping rrdtool rrdcached httping iproute2 util-linux mount libcap2-bin locales qemu-user-static systemd \
           chromium prometheus influxdb dnsmasq-base openssh-server lintian ansible python3-apt adduser file
# Release targets: GOARCH[/GOARM].
CROSS   := amd64 arm/6 arm/7 arm64
DEMO    := demo

.PHONY: build test test-arm deps vet fmt-check bench fuzz run cross deb install clean

# Without cgo: the daemon changes the capabilities of all its threads at once, which Go
# allows only then (and the binary then runs on any Linux of its architecture).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/pingmachine

deps:
	./.ci/deps $(DEBS)

vet:
	$(GO) vet ./...
	GOARCH=arm GOARM=7 $(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# -p 1: the engine tests measure delays to within a millisecond, so packages do not
# compete for the two CPUs.
test: deps fmt-check vet test-arm
	$(GO) test -count=1 -timeout 15m -p 1 ./...

# The engine's, the RRD format's and the order parser's tests as 32-bit ARM (the Raspberry Pi's armv6) and
# arm64 binaries under qemu-user. qemu-user does not emulate SO_TIMESTAMPNS (the engine then logs that it
# measures RTTs when replies are read, and the scripted responder cannot start), SO_MEMINFO
# (kernel drop counts) or reading back SO_BINDTODEVICE, so those tests are left out here,
# as is the test that re-executes its own binary (qemu-user does not follow that exec).
QEMU_SKIP := TestScripted|TestKernelDrops|TestRoundOptions/.*/.*interface|TestKillDuringUpdate
test-arm: deps
	@mkdir -p bin
	@for pkg in pinger rrdfmt orders; do \
		GOARCH=arm GOARM=6 $(GO) test -c -o bin/$$pkg-armv6.test ./$$pkg || exit 1; \
		GOARCH=arm64 $(GO) test -c -o bin/$$pkg-arm64.test ./$$pkg || exit 1; \
		echo "qemu-arm $$pkg"; (cd $$pkg && qemu-arm-static ../bin/$$pkg-armv6.test -test.count=1 -test.skip '$(QEMU_SKIP)') || exit 1; \
		echo "qemu-aarch64 $$pkg"; (cd $$pkg && qemu-aarch64-static ../bin/$$pkg-arm64.test -test.count=1 -test.skip '$(QEMU_SKIP)') || exit 1; \
	done

bench: build
	$(GO) test -run '^$$' -bench Loopback -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench SteadyState -benchtime 200000x -benchmem ./bench/
	$(GO) test -run '^$$' -bench RRDUpdate -benchtime 2s ./bench/
	$(GO) test -run '^$$' -bench Daemon -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench Serving -benchtime 1x -timeout 30m ./bench/
	./bench/vs-fping.sh -n 10000 -c 20 -p 1000
	./bench/vs-perl.sh -b $(BIN)
	./bench/vs-smokeping-prober.sh -b $(BIN)

# Each fuzz target for FUZZTIME; `make test` runs their seed corpora (testdata/fuzz).
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./orders/
	$(GO) test -run '^$$' -fuzz FuzzParseICMP -fuzztime $(FUZZTIME) ./pinger/
	$(GO) test -run '^$$' -fuzz FuzzDecodeHeader -fuzztime $(FUZZTIME) ./rrdfmt/
	$(GO) test -run '^$$' -fuzz FuzzSCIONParse -fuzztime $(FUZZTIME) ./pinger/adapter/

# The daemon in the foreground on a demo base directory in the checkout, with example
# orders that ping loopback addresses (testdata/demo), its pages at http://127.0.0.1:9374/.
run: build
	@mkdir -p $(DEMO)/orders
	cp -R testdata/demo/orders/. $(DEMO)/orders/
	$(BIN) --debug --basedir $(DEMO) --listen 127.0.0.1:9374

# The release version (deploy/debian/version.sh, from git describe), which release
# binaries print with --version; a plain `go build` says "devel". The packages' file times
# are the last commit's (unless SOURCE_DATE_EPOCH is set), so that building a commit twice
# gives the same bytes.
VERSION           = $(shell deploy/debian/version.sh)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct)
RELEASE_FLAGS     = -trimpath -ldflags '-s -w -X main.version=$(VERSION)'
# Debian architecture=GOARCH[/GOARM]: armhf is built for armv6, so one package serves every Pi.
DEB_ARCHS := amd64=amd64 armhf=arm/6 arm64=arm64
DIST      ?= dist

cross:
	@for t in $(CROSS); do \
		arch=$${t%%/*}; arm=$${t#*/}; [ "$$arm" = "$$t" ] && arm=; \
		out=bin/pingmachine-linux-$$arch$${arm:+v$$arm}; \
		echo "building $$out"; \
		GOOS=linux GOARCH=$$arch GOARM=$$arm CGO_ENABLED=0 $(GO) build $(RELEASE_FLAGS) -o $$out ./cmd/pingmachine || exit 1; \
	done

# $(DIST)/pingmachine_VERSION-1_{amd64,armhf,arm64}.deb (deploy/debian/build-deb.sh says how).
deb: build
	@rm -f $(DIST)/pingmachine_*.deb
	@for t in $(DEB_ARCHS); do \
		debarch=$${t%%=*}; goarch=$${t#*=}; arch=$${goarch%%/*}; arm=$${goarch#*/}; [ "$$arm" = "$$goarch" ] && arm=; \
		GOOS=linux GOARCH=$$arch GOARM=$$arm CGO_ENABLED=0 $(GO) build $(RELEASE_FLAGS) -o bin/deb/pingmachine-$$debarch ./cmd/pingmachine || exit 1; \
		SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) deploy/debian/build-deb.sh $$debarch bin/deb/pingmachine-$$debarch '$(VERSION)' $(DIST) $(BIN) || exit 1; \
	done

# The binary and the systemd unit (cmd/pingmachine/pingmachine.service). The unit runs as
# the user pingmachine, which the README says how to create.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/pingmachine
	sed 's|/usr/local/bin/pingmachine|$(PREFIX)/bin/pingmachine|' cmd/pingmachine/pingmachine.service > pingmachine.service.tmp
	install -D -m 0644 pingmachine.service.tmp $(DESTDIR)$(UNITDIR)/pingmachine.service
	rm -f pingmachine.service.tmp

clean:
	rm -rf bin dist $(DEMO)

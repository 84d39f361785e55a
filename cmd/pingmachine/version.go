package main

import (
	"runtime/debug"
	"strings"
)

// version is the release's version, set by `make cross` and `make deb` with
// -ldflags "-X main.version=..." (the Debian package's upstream version). The linker can
// only set a package-level string, so this is one; nothing assigns it at run time.
var version string

// versionString is what --version prints: the version set at link time or, for a plain
// `go build`, "devel" with the commit Go recorded, if any, so that such a binary never
// claims to be a release.
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return develVersion(info.Settings)
}

// develVersion describes an unreleased build from the version control settings that
// go build records: "devel", then the commit, its time and whether the tree was modified.
func develVersion(settings []debug.BuildSetting) string {
	var rev, at, modified string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	parts := []string{"devel", rev[:min(len(rev), 12)]}
	if at != "" {
		parts = append(parts, at)
	}
	if modified == "true" {
		parts = append(parts, "modified")
	}
	return strings.Join(parts, " ")
}

module pingmachine

go 1.26.0

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/influxdata/line-protocol/v2 v2.2.1
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
	gopkg.in/yaml.v3 v3.0.1
)

module github.com/dnfproxy/dnfproxy

go 1.26.8

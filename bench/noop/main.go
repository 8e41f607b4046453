// Command noop does nothing: the reference a launch of scan-gate is measured against, the
// cost of starting any Go program.
package main

func main() {}

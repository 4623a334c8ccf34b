// Package plumbing creates the transports that carry bytes along a graph's
// edges and hands each stage the descriptors its edges give it.
package plumbing

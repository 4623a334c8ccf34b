// Package parser turns a pipeline spec written in bash syntax into a [Graph]
// of stages and edges, with source positions, without starting any process.
package parser

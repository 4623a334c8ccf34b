// Package stage starts the processes of a pipeline graph and supervises them
// to the end: signal forwarding, grace-then-kill teardown and exit statuses.
package stage

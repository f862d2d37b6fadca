// Package cli holds what the stoker and stokerd commands share on their
// command lines: the version both print, flags read from STOKER_* and
// STOKERD_* environment variables, stokerd's configuration file, long
// flags written with one dash (as Go's flag package took them), and how
// an error ends the process.
//
// Precedence, highest first: the command line, the environment, the
// configuration file, the flag's default.
//
// It imports nothing of Stoker: the commands hand it their flags.
package cli

// Package layout holds no code: its test states which Stoker package may
// import which, as a table, and fails when an import points the wrong way
// (storage and shuffling below serving, the wire format used only at the
// edges). It imports nothing of Stoker.
package layout

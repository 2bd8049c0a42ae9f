// Command gen writes fixtures.json: C2SP signed notes, tlog-checkpoints,
// RFC 6962 trees and proofs made by Go's golang.org/x/mod/sumdb/note and
// sumdb/tlog, an implementation independent of ours. tests/c2sp_go.rs reads
// the committed fixtures; CI does not need Go. See README.md beside this
// file for how to run it again.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The namespace: the checkpoint origin and the auditor's key name.
const origin = "backup-key-vault.fleet_keys.v1"

// Entries of the log: u64be(epoch) || SHA-256("artifact <epoch>"), as
// SPEC.md §15.2 defines them.
const logSize = 13

func entry(epoch uint64) []byte {
	d := sha256.Sum256([]byte(fmt.Sprintf("artifact %d", epoch)))
	out := make([]byte, 8, 40)
	binary.BigEndian.PutUint64(out, epoch)
	return append(out, d[:]...)
}

// A HashReader over the stored hashes of an in-memory tree.
type memory []tlog.Hash

func (m memory) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(m)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

// seedKey is an Ed25519 key from a 32-byte seed of `b` repeated, as a note
// signer and verifier named `name`.
func seedKey(name string, b byte) (note.Signer, note.Verifier, ed25519.PublicKey) {
	seed := bytes.Repeat([]byte{b}, 32)
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed), name)
	check(err)
	s, err := note.NewSigner(skey)
	check(err)
	v, err := note.NewVerifier(vkey)
	check(err)
	return s, v, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

// opaqueSigner signs with fixed bytes of any length: a stand-in for a
// post-quantum cosigner (ML-DSA-87 signatures are 4,627 bytes). Go's note
// neither knows nor checks them; verifiers ignore unknown keys.
type opaqueSigner struct {
	name string
	hash uint32
	size int
}

func (o opaqueSigner) Name() string    { return o.name }
func (o opaqueSigner) KeyHash() uint32 { return o.hash }
func (o opaqueSigner) Sign(msg []byte) ([]byte, error) {
	return bytes.Repeat([]byte{byte(o.hash)}, o.size), nil
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

func hx(b []byte) string { return hex.EncodeToString(b) }

type noteCase struct {
	Case string `json:"case"`
	// The note, as text.
	Note string `json:"note"`
	// Go's note.Open with the auditor's verifier only: "ok", or its error.
	GoOpen string `json:"go_open"`
	// The checkpoint Go's reading of the text gives (tree size and root),
	// when the note opened.
	TreeSize *int64 `json:"tree_size,omitempty"`
	RootHash string `json:"root_hash,omitempty"`
	// Extension lines after the root hash, in order.
	Extensions []string `json:"extensions"`
}

type proofCase struct {
	TreeSize int64    `json:"tree_size"`
	Index    int64    `json:"index"`
	Proof    []string `json:"proof"`
}

func main() {
	auditorSigner, auditorVerifier, auditorPub := seedKey(origin, 0xA7)
	known := note.VerifierList(auditorVerifier)

	// The tree, record by record, with Go's stored hashes.
	var stored memory
	var entries []string
	for e := uint64(1); e <= logSize; e++ {
		data := entry(e)
		entries = append(entries, hx(data))
		hashes, err := tlog.StoredHashes(int64(e-1), data, stored)
		check(err)
		stored = append(stored, hashes...)
	}
	var roots []string
	for t := int64(0); t <= logSize; t++ {
		h, err := tlog.TreeHash(t, stored)
		check(err)
		roots = append(roots, hx(h[:]))
	}
	var inclusion []proofCase
	var consistency []proofCase
	for t := int64(1); t <= logSize; t++ {
		for n := int64(0); n < t; n++ {
			p, err := tlog.ProveRecord(t, n, stored)
			check(err)
			th, _ := tlog.TreeHash(t, stored)
			check(tlog.CheckRecord(p, t, th, n, tlog.RecordHash(entry(uint64(n+1)))))
			inclusion = append(inclusion, proofCase{t, n, hashes(p)})
		}
		for n := int64(1); n <= t; n++ {
			p, err := tlog.ProveTree(t, n, stored)
			check(err)
			th, _ := tlog.TreeHash(t, stored)
			nh, _ := tlog.TreeHash(n, stored)
			check(tlog.CheckTree(p, t, th, n, nh))
			consistency = append(consistency, proofCase{t, n, hashes(p)})
		}
	}

	body := func(size int64, ext ...string) string {
		h, err := tlog.TreeHash(size, stored)
		check(err)
		text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(h[:]))
		for _, e := range ext {
			text += e + "\n"
		}
		return text
	}
	sign := func(text string, signers ...note.Signer) string {
		msg, err := note.Sign(&note.Note{Text: text}, signers...)
		check(err)
		return string(msg)
	}
	var witnesses []note.Signer
	for i := 0; i < 16; i++ {
		s, _, _ := seedKey(fmt.Sprintf("witness-%02d.example/log", i), byte(0x10+i))
		witnesses = append(witnesses, s)
	}
	var pq []note.Signer
	for i := 0; i < 16; i++ {
		pq = append(pq, opaqueSigner{
			name: fmt.Sprintf("pq-witness-%02d.example/%s", i, strings.Repeat("x", 80)),
			hash: uint32(0x5100 + i),
			size: 4627,
		})
	}
	// A second auditor line by the same key with a failing signature.
	badLine := func(text string) string {
		sig := make([]byte, 64)
		h := keyID(origin, auditorPub)
		return "— " + origin + " " + base64.StdEncoding.EncodeToString(append(h, sig...)) + "\n"
	}

	var notes []noteCase
	add := func(name, msg string, ext []string) {
		c := noteCase{Case: name, Note: msg, Extensions: ext}
		if c.Extensions == nil {
			c.Extensions = []string{}
		}
		n, err := note.Open([]byte(msg), known)
		if err != nil {
			c.GoOpen = err.Error()
		} else {
			c.GoOpen = "ok"
			lines := strings.SplitN(n.Text, "\n", 4)
			var size int64
			fmt.Sscanf(lines[1], "%d", &size)
			root, err := base64.StdEncoding.DecodeString(lines[2])
			check(err)
			c.TreeSize = &size
			c.RootHash = hx(root)
		}
		notes = append(notes, c)
	}
	add("auditor only, size 13", sign(body(13), auditorSigner), nil)
	add("auditor only, size 1", sign(body(1), auditorSigner), nil)
	add("auditor and two witness cosignatures", sign(body(13), auditorSigner, witnesses[0], witnesses[1]), nil)
	add("witness cosignatures before the auditor's", sign(body(13), witnesses[2], witnesses[3], auditorSigner), nil)
	add("auditor and 16 Ed25519 witnesses", sign(body(13), append([]note.Signer{auditorSigner}, witnesses...)...), nil)
	add("auditor and 16 post-quantum-sized cosignatures", sign(body(13), append([]note.Signer{auditorSigner}, pq...)...), nil)
	ext := []string{"extension one", "— not a signature line", "ext=3"}
	add("extension lines", sign(body(13, ext...), auditorSigner, witnesses[0]), ext)
	add("witnesses only", sign(body(13), witnesses[0], witnesses[1]), nil)
	good := sign(body(13), auditorSigner)
	add("a failing auditor line after a good one", good+badLine(good), nil)
	cut := strings.Index(good, "\n\n") + 2
	add("a failing auditor line before a good one", good[:cut]+badLine(good)+good[cut:], nil)
	// An unknown key's line in lenient base64 (non-zero padding bits):
	// Go ignores it like any unknown signature.
	add("an unknown key's line in non-canonical base64", good+"— witness.example/x AAAAAAB=\n", nil)
	add("an unknown key's line that is not base64", good+"— witness.example/x !!!!\n", nil)
	add("a changed tree size", strings.Replace(good, "\n13\n", "\n12\n", 1), nil)
	// 101 signature lines: Go refuses more than 100.
	many := good
	for i := 0; i < 100; i++ {
		many += fmt.Sprintf("— w%d.example AAAAAAA=\n", i)
	}
	add("101 signature lines", many, nil)

	// What the empty tree hashes to in Go.
	empty, err := tlog.TreeHash(0, stored)
	check(err)

	out := map[string]any{
		"description":   "C2SP signed notes and tlog-checkpoints, RFC 6962 tree hashes, inclusion (tlog.ProveRecord) and consistency (tlog.ProveTree) proofs, all made by Go's golang.org/x/mod/sumdb/note and sumdb/tlog. Entries are u64be(epoch) || SHA-256(\"artifact <epoch>\") for epochs 1..13 (SPEC.md §15.2). Auditor key: Ed25519 seed 0xa7 x 32, named by the origin; witnesses: seeds 0x10.. named witness-NN.example/log. `go_open` is note.Open with the auditor's verifier alone. tests/c2sp_go.rs checks ours against these in both directions.",
		"generator":     "vectors/c2sp/gen.go (see README.md)",
		"origin":        origin,
		"auditor_seed":  hx(bytes.Repeat([]byte{0xA7}, 32)),
		"auditor_key":   hx(auditorPub),
		"auditor_vkey":  auditorVerifierKey(auditorPub),
		"entries":       entries,
		"roots":         roots,
		"go_empty_tree": hx(empty[:]),
		"inclusion":     inclusion,
		"consistency":   consistency,
		"notes":         notes,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	check(enc.Encode(out))
}

func hashes(p []tlog.Hash) []string {
	out := []string{}
	for _, h := range p {
		out = append(out, hx(h[:]))
	}
	return out
}

// keyID is signed-note's key id of an Ed25519 key.
func keyID(name string, pub ed25519.PublicKey) []byte {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{1})
	h.Write(pub)
	return h.Sum(nil)[:4]
}

func auditorVerifierKey(pub ed25519.PublicKey) string {
	v, err := note.NewEd25519VerifierKey(origin, pub)
	check(err)
	return v
}

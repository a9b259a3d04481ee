import Crypto
import Foundation
import Testing

@testable import AuditLog

struct SignedNoteTests {
    struct GoVector: Decodable {
        var skey: String
        var vkey: String
        var text: String
        var note: String
    }

    @Test("signing reproduces the Go reference note byte for byte, and it verifies")
    func goReferenceVector() throws {
        let vector = try JSONDecoder().decode(GoVector.self, from: vectorFile("signed-note-go.json"))
        let signer = try NoteSigner(privateKeyText: vector.skey)
        #expect(signer.verifierKey.vkey == vector.vkey)
        #expect(try signer.sign(vector.text) == vector.note)
        let key = try NoteVerifierKey(vkey: vector.vkey)
        #expect(try key.open(Array(vector.note.utf8)) == vector.text)
        #expect(signer.privateKeyText == vector.skey)
    }

    @Test("key hash is the first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)")
    func keyHash() throws {
        let signer = try NoteSigner.generate(name: "example.org/log")
        let key = signer.verifierKey
        let digest = Array(
            SHA256.hash(data: Array("example.org/log".utf8) + [0x0A, 0x01] + Array(key.publicKey.rawRepresentation)))
        #expect(
            key.keyHash == UInt32(digest[0]) << 24 | UInt32(digest[1]) << 16 | UInt32(digest[2]) << 8
                | UInt32(digest[3]))
        #expect(try NoteVerifierKey(vkey: key.vkey) == key)
    }

    @Test("tampered notes, other keys and malformed keys are refused")
    func refusals() throws {
        let vector = try JSONDecoder().decode(GoVector.self, from: vectorFile("signed-note-go.json"))
        let key = try NoteVerifierKey(vkey: vector.vkey)
        var tampered = Array(vector.note.utf8)
        tampered[5] ^= 0x20
        #expect(throws: (any Error).self) { try key.open(tampered) }
        #expect(throws: (any Error).self) { try key.open(Array(vector.text.utf8)) }
        let other = try NoteSigner.generate(name: "PeterNeumann")
        #expect(throws: (any Error).self) { try other.verifierKey.open(Array(vector.note.utf8)) }
        #expect(throws: (any Error).self) {
            try NoteVerifierKey(vkey: "PeterNeumann+c74f20a4" + vector.vkey.dropFirst(21))
        }
        #expect(throws: (any Error).self) { try NoteVerifierKey(vkey: "not a key") }
        #expect(throws: (any Error).self) { try NoteSigner.generate(name: "has space") }
        #expect(throws: (any Error).self) { try other.sign("no final newline") }
    }

    @Test("checkpoints round-trip through their note text")
    func checkpoints() throws {
        let signer = try NoteSigner.generate(name: "example.org/log")
        let checkpoint = Checkpoint(origin: "example.org/log", size: 42, root: TreeHash.leaf([1, 2, 3]))
        let note = Array(try signer.sign(checkpoint.text).utf8)
        #expect(try Checkpoint.open(note, key: signer.verifierKey) == checkpoint)
        #expect(try Checkpoint.readUnverified(note) == checkpoint)
        #expect(throws: (any Error).self) { try Checkpoint.open(note, key: signer.verifierKey, origin: "other/log") }
        #expect(throws: (any Error).self) { try Checkpoint(text: "example.org/log\n042\n\(checkpoint.root.base64)\n") }
    }

    @Test("the signer refuses a checkpoint that does not extend the last one")
    func refusesInconsistentCheckpoint() throws {
        let signer = try NoteSigner.generate(name: "example.org/log")
        var checkpoints = try CheckpointSigner.empty(signer: signer)
        let one = Checkpoint(origin: "example.org/log", size: 1, root: TreeHash.leaf([1]))
        _ = try checkpoints.sign(one, extending: .emptyTree)
        #expect(throws: (any Error).self) {
            try checkpoints.sign(
                Checkpoint(origin: "example.org/log", size: 2, root: TreeHash.leaf([2])), extending: TreeHash.leaf([9]))
        }
        #expect(throws: (any Error).self) {
            try checkpoints.sign(
                Checkpoint(origin: "example.org/log", size: 1, root: TreeHash.leaf([3])), extending: one.root)
        }
        #expect(throws: (any Error).self) {
            try checkpoints.sign(Checkpoint(origin: "example.org/log", size: 0, root: .emptyTree), extending: one.root)
        }
        #expect(checkpoints.last.checkpoint == one)
    }

    @Test("base64 decoding is strict")
    func base64() {
        #expect(Base64.encode(Array("hello".utf8)) == "aGVsbG8=")
        #expect(Base64.decode("aGVsbG8=") == Array("hello".utf8))
        #expect(Base64.decode("aGVsbG8") == nil)
        #expect(Base64.decode("aGVsbG9=") == nil)
        #expect(Base64.decode("aGV=bG8=") == nil)
        #expect(Base64.decode("") == [])
    }
}

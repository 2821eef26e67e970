import Foundation
import Inference
import TensorFiles
import Testing

/// Token ids of every family's tokenizer against Tests/Golden/inference/families/<name>.json
/// (Tests/Reference/families_reference.py): the GGUF tokenizer against the reference built from the
/// GGUF's own vocabulary (`tokenizers` BPE with llama.cpp's pre-tokenizer regex, or Google's
/// SentencePiece for a SentencePiece vocabulary), and the HF folder's tokenizer.json against the
/// `tokenizers` library reading the same file, on texts with Unicode, digits, code, whitespace runs,
/// emoji, contractions and U+FFFD, and on the three sample texts.
@Suite struct FamilyTokenizerTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var text: String
            var gguf: [Int32]
            var tokenizers_ids: [Int32]?
        }
        struct Tokenizer: Decodable {
            var cases: [Case]
            var files: [String: Case]
        }
        var model: String
        var tokenizer: Tokenizer

        /// The text cases, then the files (whose `text` is their path) with their contents.
        func allCases() throws -> [Case] {
            try tokenizer.cases + tokenizer.files.keys.sorted().map { path in
                var c = tokenizer.files[path]!
                c.text = try String(contentsOf: repositoryFile(path), encoding: .utf8)
                return c
            }
        }
    }

    static func golden(_ name: String) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: repositoryFile("Tests/Golden/inference/families/\(name).json")))
    }

    static func ggufTokenizer(_ name: String, _ g: Golden) throws -> Inference.Tokenizer {
        let metadata = try GGUFFile(path: repositoryFile("models/\(name)/\(g.model)").path).metadata
        let family = try #require(metadata["general.architecture"]?.stringValue.flatMap(Architecture.gguf))
        return try Inference.Tokenizer(metadata: metadata, addsBOSByDefault: family.addsBOSByDefault)
    }

    @Test(arguments: ["smollm2", "qwen2", "gemma3"])
    func ggufTokenizerMatchesTheReference(name: String) throws {
        let g = try Self.golden(name)
        let tokenizer = try Self.ggufTokenizer(name, g)
        var checked = 0
        for c in try g.allCases() {
            let ids = tokenizer.encode(c.text)
            #expect(ids == c.gguf, "\(name): \(c.text.prefix(40).debugDescription)")
            checked += 1
        }
        #expect(checked >= 15)
    }

    @Test(arguments: ["smollm2", "qwen2", "gemma3"])
    func tokenizerJSONMatchesTheTokenizersLibrary(name: String) throws {
        let g = try Self.golden(name)
        let path = repositoryFile("models/hf/\(name)-f32/tokenizer.json").path
        let tokenizer = try Inference.Tokenizer(huggingFaceJSONAt: path)
        var checked = 0
        for c in try g.allCases() {
            let expected = try #require(c.tokenizers_ids, "\(name): the golden lacks tokenizers ids")
            #expect(tokenizer.encode(c.text) == expected, "\(name): \(c.text.prefix(40).debugDescription)")
            checked += 1
        }
        #expect(checked >= 15)
    }

    /// Decoding the ids of a text gives the text back (byte fallback and the ▁ space included).
    @Test(arguments: ["smollm2", "qwen2", "gemma3"])
    func decodeInvertsEncode(name: String) throws {
        let g = try Self.golden(name)
        let tokenizer = try Self.ggufTokenizer(name, g)
        for c in g.tokenizer.cases where !c.text.isEmpty {
            var ids = tokenizer.encode(c.text)
            if tokenizer.addsBOS, ids.first == tokenizer.bosTokenID { ids.removeFirst() }
            #expect(try tokenizer.decode(ids) == c.text, "\(name): \(c.text.prefix(40).debugDescription)")
        }
    }
}

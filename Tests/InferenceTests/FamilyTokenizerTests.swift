import Foundation
import Inference
import TensorFiles
import Testing

/// Token ids of every family's tokenizer against Tests/Golden/inference/families/<name>.json
/// (Tests/Reference/families_reference.py): the GGUF tokenizer against the reference built from the
/// GGUF's own vocabulary (`tokenizers` BPE with llama.cpp's pre-tokenizer regex, or llama.cpp's
/// SentencePiece algorithm checked against Google's `sentencepiece`), and the HF folders'
/// tokenizer.json against the `tokenizers` library reading the same file, on texts with Unicode, digits, code, whitespace runs,
/// emoji, contractions and U+FFFD, and on the three sample texts.
@Suite struct FamilyTokenizerTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var text: String
            var gguf: [Int32]
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

    /// Ids of the `tokenizers` library reading the same tokenizer.json (Tests/Reference/tokenizer_json_golden.py).
    struct TokenizerJSONGolden: Decodable {
        struct Case: Decodable { var text: String; var is_file: Bool; var ids: [Int32] }
        var cases: [Case]
    }

    @Test(arguments: ["smollm2", "qwen2", "gemma3"])
    func tokenizerJSONMatchesTheTokenizersLibrary(name: String) throws {
        let golden = try JSONDecoder().decode(
            TokenizerJSONGolden.self,
            from: Data(contentsOf: repositoryFile("Tests/Golden/inference/families/\(name)_tokenizer_json.json")))
        for folder in ["\(name)-f32", "\(name)-bf16"] {
            let tokenizer = try Inference.Tokenizer(huggingFaceJSONAt: repositoryFile("models/hf/\(folder)/tokenizer.json").path)
            for c in golden.cases {
                let text = c.is_file ? try String(contentsOf: repositoryFile(c.text), encoding: .utf8) : c.text
                #expect(tokenizer.encode(text) == c.ids, "\(folder): \(c.text.prefix(40).debugDescription)")
            }
            #expect(golden.cases.count >= 15)
        }
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

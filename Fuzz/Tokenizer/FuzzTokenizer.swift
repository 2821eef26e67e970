import Inference
import TensorFiles

/// libFuzzer entry for the tokenizers: the first byte picks the source, the rest is
/// - 0: a tokenizer.json (`Tokenizer(huggingFaceJSON:)`),
/// - 1: a GGUF file whose `tokenizer.ggml.*` fields build a `Tokenizer(metadata:)`.
/// Whatever is built then encodes a fixed text with Unicode, digits, whitespace runs and U+FFFD,
/// and decodes what it produced. Any input must give a tokenizer or a typed error, never a trap;
/// every id produced must lie in the vocabulary.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let body = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let tokenizer: Tokenizer?
    switch data[0] % 2 {
    case 0:
        guard let json = try? JSONValue.parse(Array(body), path: "fuzz.tokenizer.json") else { return 0 }
        tokenizer = try? Tokenizer(huggingFaceJSON: json)
    default:
        let file = MappedFile(copying: body, path: "fuzz.gguf")
        guard let gguf = try? GGUFFile(mapping: file) else { return 0 }
        tokenizer = try? Tokenizer(metadata: gguf.metadata, addsBOSByDefault: data[0] & 2 != 0)
    }
    guard let tokenizer else { return 0 }
    let ids = tokenizer.encode("Héllo  wörld's 1234 \u{FFFD}\n\n\tx 日本 e\u{301} 👩‍💻")
    for id in ids where id < 0 || Int(id) >= tokenizer.vocabularySize {
        fatalError("id \(id) outside the vocabulary of \(tokenizer.vocabularySize)")
    }
    _ = try? tokenizer.decode(ids)
    return 0
}

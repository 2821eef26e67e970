import TensorFiles

/// libFuzzer entry: any bytes must give a GGUFFile or a TensorFileError, never a trap, hang or
/// huge allocation. Small tensors are also dequantized.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.gguf")
    guard let gguf = try? GGUFFile(mapping: file) else { return 0 }
    _ = gguf.metadata.count
    for t in gguf.tensors where t.byteCount <= 1 << 20 {
        _ = try? gguf.floats(t)
    }
    _ = try? ModelCatalog(tensors: gguf.tensors, metadata: gguf.compactMetadata(), path: "fuzz.gguf")
    return 0
}

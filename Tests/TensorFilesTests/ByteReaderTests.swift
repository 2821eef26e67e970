import Testing
@testable import TensorFiles

@Suite struct ByteReaderTests {
    @Test func readsLittleEndianAndStopsAtTheEnd() {
        let bytes: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0xFF]
        let (first, remaining, failed, offset) = bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, path: "t.bin")
            let first = try? r.read(UInt32.self, "u32")
            let remaining = r.remaining
            let failed = (try? r.read(UInt16.self, "u16")) == nil
            return (first, remaining, failed, r.offset)
        }
        #expect(first == 0x0403_0201)
        #expect(remaining == 1)
        #expect(failed)
        #expect(offset == 4)
    }

    @Test func invalidUTF8IsAnErrorNamingTheOffset() throws {
        let bytes: [UInt8] = [0x61, 0xC3, 0x28]
        bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, path: "t.bin")
            do {
                _ = try r.readUTF8(count: 3, "name")
                Issue.record("accepted invalid UTF-8")
            } catch let e as TensorFileError {
                #expect(e.description == "t.bin: name is not valid UTF-8 (offset 0)")
            } catch { Issue.record("unexpected \(error)") }
        }
    }

    @Test(arguments: [([3, 4], 12), ([], 1), ([0, 1 << 40], 0)])
    func checkedProducts(dims: [Int], expected: Int) {
        #expect(CheckedSize.product(dims) == expected)
    }

    @Test func overflowingProductsAreNil() {
        #expect(CheckedSize.product([1 << 32, 1 << 32]) == nil)
        #expect(CheckedSize.product([-1, 2]) == nil)
    }
}

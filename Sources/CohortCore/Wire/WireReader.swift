/// Reads big-endian fields from a frame body, checking every bound. Never traps on input.
public struct WireReader: ~Copyable {
    private let bytes: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    public private(set) var offset: Int = 0

    /// Reads from `bytes`, which must stay valid while the reader is used.
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Bytes not yet read.
    public var remaining: Int { bytes.count - offset }

    /// Reads one byte.
    public mutating func readUInt8() throws(WireError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads a big-endian 16-bit integer.
    public mutating func readUInt16() throws(WireError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    /// Reads a big-endian 32-bit integer.
    public mutating func readUInt32() throws(WireError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        defer { offset += 4 }
        return UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Reads a big-endian 64-bit integer.
    public mutating func readUInt64() throws(WireError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated }
        defer { offset += 8 }
        return UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Reads a boolean byte (0 or 1).
    public mutating func readBool() throws(WireError) -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        case let other: throw .invalidValue("boolean byte \(other)")
        }
    }

    /// Reads `count` raw bytes.
    public mutating func readBytes(count: Int) throws(WireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { offset += count }
        return Self.copy(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
    }

    /// The bytes as an array. `Array(_:)` of a raw buffer allocates through the stdlib's
    /// specialised path and copies with one `memcpy`; building the array with
    /// `init(unsafeUninitializedCapacity:)` costs ~340 more instructions per call (its buffer
    /// allocation is not specialised for `UInt8` and looks the storage type up at run time).
    static func copy(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
        Array(raw)
    }

    /// Reads a string with a 1-byte length prefix, of at most `bytesMax` bytes.
    public mutating func readShortString(bytesMax: Int = 255) throws(WireError) -> String {
        let length = Int(try readUInt8())
        guard length <= bytesMax else { throw .invalidValue("string of \(length) bytes exceeds \(bytesMax)") }
        guard remaining >= length else { throw .truncated }
        defer { offset += length }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        guard let string = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8 }
        return string
    }

    /// Reads a string with a 2-byte length prefix (texts such as error reasons).
    public mutating func readText() throws(WireError) -> String {
        let length = Int(try readUInt16())
        guard remaining >= length else { throw .truncated }
        defer { offset += length }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        guard let string = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8 }
        return string
    }

    /// Reads a byte blob with a 4-byte length prefix, of at most `bytesMax` bytes.
    public mutating func readBlob(bytesMax: Int) throws(WireError) -> [UInt8] {
        let length = Int(try readUInt32())
        guard length <= bytesMax else { throw .payloadTooLarge(bytes: length, max: bytesMax) }
        return try readBytes(count: length)
    }

    /// The byte at absolute `position` (callers check bounds).
    func peekByte(at position: Int) -> UInt8 { bytes[position] }

    /// Skips `count` bytes (callers check bounds).
    mutating func skip(_ count: Int) { offset += count }

    /// The bytes in `start..<end` (callers check bounds).
    func bytes(from start: Int, to end: Int) -> [UInt8] {
        Self.copy(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
    }

    /// Whether the bytes in `start..<end` equal `other` (callers check bounds).
    func bytesEqual(from start: Int, to end: Int, _ other: [UInt8]) -> Bool {
        let count = end - start
        guard other.count == count else { return false }
        return other.withUnsafeBytes { other in
            // Eight bytes at a time: this runs for the sender and the groups of every message.
            var index = 0
            while index + 8 <= count {
                guard other.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                        == bytes.loadUnaligned(fromByteOffset: start + index, as: UInt64.self) else { return false }
                index += 8
            }
            while index < count {
                guard other[index] == bytes[start + index] else { return false }
                index += 1
            }
            return true
        }
    }

    /// Throws unless every byte was read.
    public func expectEnd() throws(WireError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }
}

/// Appends big-endian fields to a growing byte array.
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Starts an empty buffer with room for `capacity` bytes.
    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends one byte.
    public mutating func write(_ value: UInt8) { bytes.append(value) }
    /// Appends a big-endian 16-bit integer.
    public mutating func write(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }
    /// Appends a big-endian 32-bit integer.
    public mutating func write(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
    /// Appends a big-endian 64-bit integer.
    public mutating func write(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
    /// Appends a boolean byte.
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }
    /// Appends raw bytes.
    public mutating func write(bytes other: [UInt8]) { bytes.append(contentsOf: other) }

    /// Empties the buffer, keeping its capacity, so that one writer can encode frame after frame
    /// without allocating.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// Appends a string with a 1-byte length prefix. Callers validate lengths first; a longer
    /// string is cut at 255 bytes rather than corrupting the frame.
    public mutating func writeShortString(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            let count = min(utf8.count, 255)
            bytes.append(UInt8(count))
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[0..<count]))
        }
    }
    /// Appends a string with a 2-byte length prefix (cut at 65,535 bytes).
    public mutating func writeText(_ string: String) {
        let utf8 = string.utf8.prefix(Int(UInt16.max))
        write(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }
    /// Appends a blob with a 4-byte length prefix.
    public mutating func writeBlob(_ blob: [UInt8]) {
        write(UInt32(blob.count))
        bytes.append(contentsOf: blob)
    }
    /// Appends a blob with a 4-byte length prefix.
    public mutating func writeBlob(_ blob: ArraySlice<UInt8>) {
        write(UInt32(blob.count))
        bytes.append(contentsOf: blob)
    }

    /// Overwrites the 4-byte big-endian length at `offset` (used for frame prefixes) with the
    /// bytes written after it, plus `adding` bytes the caller appends elsewhere.
    mutating func patchLength(at offset: Int, adding: Int = 0) {
        let length = UInt32(bytes.count - offset - 4 + adding)
        bytes[offset] = UInt8(truncatingIfNeeded: length >> 24)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: length >> 16)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: length)
    }
}

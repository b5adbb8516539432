/// An element of a Diffie-Hellman group, as fixed-width bytes (big-endian for MODP groups,
/// little-endian u-coordinates for X25519, as RFC 7748 writes them).
public struct GroupElement: Hashable, Sendable {
    /// The encoding.
    public let bytes: [UInt8]
    /// Wraps an encoding (validate it with ``DHGroup/validate(_:)`` before use).
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

/// A secret exponent (a scalar, for X25519).
public struct Exponent: Hashable, Sendable {
    /// The encoding, in the group's byte order.
    public let bytes: [UInt8]
    /// Wraps an encoding.
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

/// A group the key agreement protocols exponentiate in (DESIGN.md §2, "over a DH group").
/// Exponentiation is the operation every protocol needs; tree-based protocols (TGDH, STR) also
/// map a shared element to the next exponent. Implementations keep their backend contexts and
/// are not safe for concurrent use; see ``CipherSuite``.
public protocol DHGroup: AnyObject, SendableMetatype {
    /// Registered name, e.g. `modp-2048`, `x25519`.
    var name: String { get }
    /// Bytes of an encoded element.
    var elementBytes: Int { get }
    /// The generator.
    var generator: GroupElement { get }
    /// `base` raised to `exponent`.
    func power(_ base: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement
    /// A fresh secret exponent from `random` (a cryptographic generator outside tests).
    func randomExponent(using random: inout some RandomNumberGenerator) -> Exponent
    /// Throws unless `element` is a valid element of the prime-order group a peer may send
    /// (length, range, subgroup membership): small-subgroup attacks start with invalid elements.
    func validate(_ element: GroupElement) throws(CryptoError)
    /// The exponent a shared element stands for in tree protocols: HKDF of its encoding,
    /// reduced into the exponent range.
    func exponent(from element: GroupElement) throws(CryptoError) -> Exponent
}

/// A DH group with the whole arithmetic of a prime-order group: element products and inverses
/// (Burmester-Desmedt), exponent products and inverses modulo the group order (GDH.3's
/// factor-out). The MODP groups have it; X25519 does not.
public protocol ArithmeticDHGroup: DHGroup {
    /// a · b.
    func multiply(_ a: GroupElement, _ b: GroupElement) throws(CryptoError) -> GroupElement
    /// a⁻¹.
    func inverse(_ a: GroupElement) throws(CryptoError) -> GroupElement
    /// a · b modulo the group order.
    func multiplyExponents(_ a: Exponent, _ b: Exponent) throws(CryptoError) -> Exponent
    /// a⁻¹ modulo the group order.
    func invertExponent(_ a: Exponent) throws(CryptoError) -> Exponent
}

/// How MODP groups do their modular arithmetic.
public enum ModularArithmeticBackend: String, Sendable, CaseIterable {
    /// GMP, `mpz_powm_sec` (constant-time exponentiation).
    case gmp
    /// OpenSSL BN, `BN_mod_exp_mont_consttime` with a precomputed Montgomery context.
    case openssl
}

/// The registry of DH groups.
public enum DHGroups {
    /// Registered names; `modp-2048` is the default.
    public static let names = ["modp-1024", "modp-2048", "modp-3072", "x25519"]

    /// The default group's name.
    public static let defaultName = "modp-2048"

    /// A fresh instance of the group named `name`, MODP groups on `backend`.
    public static func make(_ name: String, backend: ModularArithmeticBackend = .openssl) throws(CryptoError) -> any DHGroup {
        switch name {
        case "modp-1024": return try MODPGroup(bits: 1024, backend: backend)
        case "modp-2048": return try MODPGroup(bits: 2048, backend: backend)
        case "modp-3072": return try MODPGroup(bits: 3072, backend: backend)
        case "x25519": return X25519Group()
        default: throw .backendFailure("unknown DH group '\(name)'; available: \(names.joined(separator: ", "))")
        }
    }
}

import COpenSSL

/// A MODP group: the multiplicative group modulo a safe prime p = 2q + 1 with generator 2,
/// which generates the subgroup of prime order q. The primes are OpenSSL's copies of RFC 2409
/// group 2 (1024-bit, the source system's era) and RFC 3526 groups 14 (2048-bit, the default)
/// and 15 (3072-bit). Arithmetic runs on GMP or OpenSSL BN, both constant-time for
/// exponentiation.
public final class MODPGroup: ArithmeticDHGroup {
    public let name: String
    public let elementBytes: Int
    public let generator: GroupElement
    /// The arithmetic backend.
    public let backend: ModularArithmeticBackend
    /// p, big-endian.
    public let prime: [UInt8]
    /// q = (p − 1) / 2, the order of the generator, big-endian, `elementBytes` wide.
    public let order: [UInt8]
    /// Bytes of a fresh random exponent: 256 bits, at least twice the groups' security level.
    public static let randomExponentBytes = 32

    private let elements: any ModularArithmetic
    private let exponents: any ModularArithmetic
    private let one: [UInt8]
    private let primeMinusOne: [UInt8]

    /// The group of `bits` (1024, 2048 or 3072) on `backend`.
    public init(bits: Int, backend: ModularArithmeticBackend) throws(CryptoError) {
        let bignum: OpaquePointer?
        switch bits {
        case 1024: bignum = BN_get_rfc2409_prime_1024(nil)
        case 2048: bignum = BN_get_rfc3526_prime_2048(nil)
        case 3072: bignum = BN_get_rfc3526_prime_3072(nil)
        default: throw .backendFailure("no MODP group of \(bits) bits; use 1024, 2048 or 3072")
        }
        guard let bignum, let half = BN_new() else { throw OpenSSL.lastError("MODP prime") }
        defer {
            BN_free(bignum)
            BN_free(half)
        }
        let width = bits / 8
        var prime = [UInt8](repeating: 0, count: width)
        var order = [UInt8](repeating: 0, count: width)
        guard BN_bn2binpad(bignum, &prime, Int32(width)) == Int32(width),
              BN_rshift1(half, bignum) == 1,  // p odd: (p − 1) / 2 = p >> 1
              BN_bn2binpad(half, &order, Int32(width)) == Int32(width)
        else { throw OpenSSL.lastError("MODP prime encoding") }
        name = "modp-\(bits)"
        elementBytes = width
        self.backend = backend
        self.prime = prime
        self.order = order
        generator = GroupElement(bytes: [UInt8](repeating: 0, count: width - 1) + [2])
        one = [UInt8](repeating: 0, count: width - 1) + [1]
        var minusOne = prime
        minusOne[width - 1] -= 1  // p ends in 0xFF: no borrow
        primeMinusOne = minusOne
        switch backend {
        case .gmp:
            elements = GMPArithmetic(modulus: prime)
            exponents = GMPArithmetic(modulus: order)
        case .openssl:
            elements = try OpenSSLArithmetic(modulus: prime)
            exponents = try OpenSSLArithmetic(modulus: order)
        }
    }

    public func power(_ base: GroupElement, _ exponent: Exponent) throws(CryptoError) -> GroupElement {
        guard base.bytes.count == elementBytes else { throw .backendFailure("element of \(base.bytes.count) bytes in \(name)") }
        return GroupElement(bytes: elements.power(base.bytes, exponent.bytes))
    }

    public func randomExponent(using random: inout some RandomNumberGenerator) -> Exponent {
        var bytes = (0..<Self.randomExponentBytes).map { _ in UInt8.random(in: 0...255, using: &random) }
        if bytes.allSatisfy({ $0 == 0 }) { bytes[Self.randomExponentBytes - 1] = 1 }
        return Exponent(bytes: bytes)
    }

    public func validate(_ element: GroupElement) throws(CryptoError) {
        guard element.bytes.count == elementBytes else {
            throw .backendFailure("element of \(element.bytes.count) bytes; \(name) needs \(elementBytes)")
        }
        // 1 < y < p − 1 (same-width big-endian bytes compare as integers), and y in the
        // subgroup of prime order q: with p = 2q + 1 that subgroup is exactly the quadratic
        // residues, which the Jacobi symbol decides without an exponentiation (y^q = 1 would
        // cost a full one). No small-subgroup confinement.
        guard element.bytes.lexicographicallyPrecedes(primeMinusOne), one.lexicographicallyPrecedes(element.bytes),
              elements.isQuadraticResidue(element.bytes)
        else { throw .backendFailure("not an element of the prime-order subgroup of \(name)") }
    }

    public func exponent(from element: GroupElement) throws(CryptoError) -> Exponent {
        let derived = try HKDF.sha256(inputKeyMaterial: element.bytes, info: Array("cohort/dh-exponent/\(name)".utf8),
                                      outputBytes: Self.randomExponentBytes)
        return Exponent(bytes: derived.allSatisfy { $0 == 0 } ? [1] : derived)
    }

    public func multiply(_ a: GroupElement, _ b: GroupElement) throws(CryptoError) -> GroupElement {
        GroupElement(bytes: elements.multiply(a.bytes, b.bytes))
    }

    public func inverse(_ a: GroupElement) throws(CryptoError) -> GroupElement {
        guard let inverse = elements.inverse(a.bytes) else { throw .backendFailure("element has no inverse in \(name)") }
        return GroupElement(bytes: inverse)
    }

    public func multiplyExponents(_ a: Exponent, _ b: Exponent) throws(CryptoError) -> Exponent {
        Exponent(bytes: exponents.multiply(a.bytes, b.bytes))
    }

    public func invertExponent(_ a: Exponent) throws(CryptoError) -> Exponent {
        guard let inverse = exponents.inverse(exponents.reduce(a.bytes)) else {
            throw .backendFailure("exponent has no inverse modulo the order of \(name)")
        }
        return Exponent(bytes: inverse)
    }
}

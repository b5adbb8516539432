import CGMP
import CohortCore
import Testing
@testable import CohortCrypto

typealias TestRandom = SeededRandom

@Suite("DH groups")
struct DHGroupTests {
    static let modpBits = [1024, 2048, 3072]
    static let backends = ModularArithmeticBackend.allCases

    @Test("the MODP primes are safe primes p = 2q + 1 (GMP Miller-Rabin, 25 rounds)", arguments: modpBits)
    func safePrimes(bits: Int) throws {
        let group = try MODPGroup(bits: bits, backend: .gmp)
        for number in [group.prime, group.order] {
            let value = GMPArithmetic.integer(number)
            defer { GMPArithmetic.free(value) }
            #expect(cohort_mpz_probab_prime(value, 25) > 0)
        }
        #expect(group.prime.first == 0xFF && group.prime.last == 0xFF, "the RFC primes start and end with 64 one bits")
    }

    @Test("group 2 is RFC 2409 / RFC 7296 §B.2's 1024-bit prime")
    func group2() throws {
        let text = """
            FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74 020BBEA6 3B139B22 514A0879 8E3404DD \
            EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED \
            EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE65381 FFFFFFFF FFFFFFFF
            """
        #expect(try MODPGroup(bits: 1024, backend: .openssl).prime == hex(text.filter { $0 != " " }.lowercased()))
    }

    @Test("GMP and OpenSSL BN agree on every operation", arguments: modpBits)
    func backendsAgree(bits: Int) throws {
        let gmp = try MODPGroup(bits: bits, backend: .gmp)
        let openssl = try MODPGroup(bits: bits, backend: .openssl)
        var random = TestRandom(seed: UInt64(bits))
        for _ in 0..<3 {
            let a = gmp.randomExponent(using: &random)
            let b = gmp.randomExponent(using: &random)
            let ga = try gmp.power(gmp.generator, a)
            #expect(ga == (try openssl.power(openssl.generator, a)))
            #expect(try gmp.power(ga, b) == (try openssl.power(ga, b)))
            #expect(try gmp.multiply(ga, ga) == (try openssl.multiply(ga, ga)))
            #expect(try gmp.inverse(ga) == (try openssl.inverse(ga)))
            #expect(try gmp.multiplyExponents(a, b) == (try openssl.multiplyExponents(a, b)))
            #expect(try gmp.invertExponent(a) == (try openssl.invertExponent(a)))
        }
    }

    @Test("Diffie-Hellman commutes; exponent and element inverses undo", arguments: modpBits, backends)
    func arithmetic(bits: Int, backend: ModularArithmeticBackend) throws {
        let group = try MODPGroup(bits: bits, backend: backend)
        var random = TestRandom(seed: 7)
        let a = group.randomExponent(using: &random)
        let b = group.randomExponent(using: &random)
        let ga = try group.power(group.generator, a)
        let gb = try group.power(group.generator, b)
        #expect(try group.power(ga, b) == (try group.power(gb, a)))
        try group.validate(ga)
        // (g^a)^(a⁻¹ mod q) = g: GDH's factor-out.
        #expect(try group.power(ga, try group.invertExponent(a)) == group.generator)
        // g^a · (g^a)⁻¹ = 1.
        let product = try group.multiply(ga, try group.inverse(ga))
        #expect(product.bytes.last == 1 && product.bytes.dropLast().allSatisfy { $0 == 0 })
        // (g^a)^b = g^(a·b mod q).
        #expect(try group.power(ga, b) == (try group.power(group.generator, try group.multiplyExponents(a, b))))
    }

    @Test("validation refuses elements a peer must not send", arguments: modpBits)
    func validation(bits: Int) throws {
        let group = try MODPGroup(bits: bits, backend: .openssl)
        let width = group.elementBytes
        let zero = [UInt8](repeating: 0, count: width)
        var one = zero
        one[width - 1] = 1
        var minusOne = group.prime
        minusOne[width - 1] -= 1
        // p ≡ 7 (mod 8): −1 is a non-residue and 2 a residue, so p − 2 = −2 lies outside the
        // order-q subgroup (it has order 2q).
        var minusTwo = group.prime
        minusTwo[width - 1] -= 2
        for bad in [zero, one, minusOne, group.prime, [UInt8](repeating: 0xFF, count: width), [1, 2, 3], minusTwo] {
            #expect(throws: CryptoError.self) { try group.validate(GroupElement(bytes: bad)) }
        }
        try group.validate(group.generator)
    }

    @Test("X25519 validation refuses exactly the points every scalar sends to zero")
    func x25519SmallOrder() throws {
        let group = X25519Group()
        var random = TestRandom(seed: 12)
        for point in X25519Group.smallOrder {
            // Each is of small order: X25519 of it is zero, which power refuses.
            #expect(throws: CryptoError.self) { try group.power(GroupElement(bytes: point), group.randomExponent(using: &random)) }
            #expect(throws: CryptoError.self) { try group.validate(GroupElement(bytes: point)) }
            var highBit = point
            highBit[31] |= 0x80
            #expect(throws: CryptoError.self) { try group.validate(GroupElement(bytes: highBit)) }
        }
        for _ in 0..<20 {
            let element = try group.power(group.generator, group.randomExponent(using: &random))
            try group.validate(element)
        }
        #expect(throws: CryptoError.self) { try group.validate(GroupElement(bytes: [9])) }
    }

    @Test("the Jacobi-symbol subgroup check agrees with y^q = 1", arguments: backends)
    func subgroupCheck(backend: ModularArithmeticBackend) throws {
        let group = try MODPGroup(bits: 1024, backend: backend)
        var random = TestRandom(seed: 11)
        let one = [UInt8](repeating: 0, count: group.elementBytes - 1) + [1]
        for index in 0..<40 {
            // Half of them members of the subgroup, half arbitrary residues modulo p.
            let element = index % 2 == 0
                ? try group.power(group.generator, group.randomExponent(using: &random))
                : GroupElement(bytes: (0..<group.elementBytes).map { _ in UInt8.random(in: 0...255, using: &random) } .enumerated().map { $0.offset == 0 ? $0.element & 0x7F : $0.element })
            let inSubgroup = try group.power(element, Exponent(bytes: group.order)).bytes == one
            let accepted = (try? group.validate(element)) != nil
            #expect(accepted == inSubgroup, "element \(index)")
        }
    }

    @Test("X25519: RFC 7748 §6.1")
    func x25519() throws {
        let group = X25519Group()
        let alice = Exponent(bytes: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = Exponent(bytes: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        let alicePublic = try group.power(group.generator, alice)
        let bobPublic = try group.power(group.generator, bob)
        #expect(hexString(alicePublic.bytes) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(hexString(bobPublic.bytes) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = try group.power(bobPublic, alice)
        #expect(hexString(shared.bytes) == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        #expect(shared == (try group.power(alicePublic, bob)))
        // A low-order point (u = 0) is refused.
        #expect(throws: CryptoError.self) { try group.validate(GroupElement(bytes: [UInt8](repeating: 0, count: 32))) }
        try group.validate(bobPublic)
    }

    @Test("tree protocols map shared elements to exponents deterministically", arguments: DHGroups.names)
    func exponentFromElement(name: String) throws {
        let group = try DHGroups.make(name)
        var random = TestRandom(seed: 3)
        let element = try group.power(group.generator, group.randomExponent(using: &random))
        let exponent = try group.exponent(from: element)
        #expect(exponent == (try group.exponent(from: element)))
        #expect(exponent != (try group.exponent(from: group.generator)))
        // And the mapped exponent works as one: a two-level DH chain agrees both ways.
        let a = group.randomExponent(using: &random)
        #expect(try group.power(try group.power(group.generator, a), exponent) == (try group.power(try group.power(group.generator, exponent), a)))
    }
}

// A 133-byte static x86-64 program that executes one AVX2 instruction and exits 0: on a CPU (or an emulated CPU
// model) without AVX2 it dies of SIGILL. It proves that `qemu-x86_64 -cpu Nehalem` really refuses AVX2, so a binary
// that runs there needs none.
import { chmodSync, writeFileSync } from "node:fs";

export function writeAvx2Probe(path: string): void {
  const code = Buffer.from([
    0xc5, 0xf5, 0xfe, 0xd0, // vpaddd ymm2, ymm1, ymm0 (VEX.256: AVX2)
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
  ]);
  const base = 0x400000n;
  const start = 64 + 56; // ELF header + one program header, then the code
  const elf = Buffer.alloc(start + code.length);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // \x7fELF, 64-bit, little-endian, version 1
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + BigInt(start), 24); // entry
  elf.writeBigUInt64LE(64n, 32); // program headers at 64
  elf.writeUInt16LE(64, 52); // header size
  elf.writeUInt16LE(56, 54); // program header size
  elf.writeUInt16LE(1, 56); // one of them
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // R+X
  elf.writeBigUInt64LE(0n, 72); // from file offset 0
  elf.writeBigUInt64LE(base, 80);
  elf.writeBigUInt64LE(base, 88);
  elf.writeBigUInt64LE(BigInt(elf.length), 96);
  elf.writeBigUInt64LE(BigInt(elf.length), 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  code.copy(elf, start);
  writeFileSync(path, elf);
  chmodSync(path, 0o755);
}

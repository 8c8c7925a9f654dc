#include "tests/integration/gen2/tiny_guest.h"

#include <elf.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sandbox/gen2/vmm/boot/setup_header.h"
#include "sandbox/gen2/vmm/layout.h"

namespace skiff::gen2::testing {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& v, size_t off, T value) {
  if (v.size() < off + sizeof(T)) v.resize(off + sizeof(T));
  std::memcpy(v.data() + off, &value, sizeof(T));
}

}  // namespace

std::vector<uint8_t> TinyCode(TinyProgram program) {
  switch (program) {
    case TinyProgram::kPrintCmdline:
      return {
          0x66, 0xba, 0xf8, 0x03,              // mov dx, 0x3f8
          0x8b, 0x8e, 0x28, 0x02, 0x00, 0x00,  // mov ecx, [rsi + 0x228]  (cmd_line_ptr)
          0x8a, 0x01,                          // loop: mov al, [rcx]
          0x84, 0xc0,                          // test al, al
          0x74, 0x06,                          // jz done
          0xee,                                // out dx, al
          0x48, 0xff, 0xc1,                    // inc rcx
          0xeb, 0xf4,                          // jmp loop
          0xb0, 0x0a,                          // done: mov al, '\n'
          0xee,                                // out dx, al
          0xb0, 0xfe,                          // mov al, 0xfe
          0xe6, 0x64,                          // out 0x64, al  (i8042 reset)
          0xf4,                                // hlt
          0xeb, 0xfd,                          // jmp hlt
      };
    case TinyProgram::kSpin:
      return {0xeb, 0xfe};  // jmp $
    case TinyProgram::kTripleFault:
      return {0x0f, 0x0b};  // ud2
  }
  return {};
}

std::vector<uint8_t> TinyBzImage(TinyProgram program) {
  constexpr size_t kSetupSects = 1;
  constexpr size_t kSetupSize = (kSetupSects + 1) * 512;
  std::vector<uint8_t> file(kSetupSize + boot::kEntry64Offset, 0);
  Put<uint8_t>(file, 0x1f1, kSetupSects);
  Put<uint16_t>(file, 0x1fe, boot::kBootFlag);
  Put<uint8_t>(file, 0x200, 0xeb);  // jmp over the header:
  Put<uint8_t>(file, 0x201, 0x6a);  //   the header ends at 0x202 + 0x6a = 0x26c
  Put<uint32_t>(file, 0x202, boot::kHeaderMagic);
  Put<uint16_t>(file, 0x206, 0x020f);
  Put<uint8_t>(file, 0x211, boot::kLoadedHigh);
  Put<uint32_t>(file, 0x22c, 0x7fffffff);  // initrd_addr_max
  Put<uint32_t>(file, 0x230, 0x200000);    // kernel_alignment
  Put<uint8_t>(file, 0x234, 1);            // relocatable_kernel
  Put<uint16_t>(file, 0x236, boot::kXlfKernel64);
  Put<uint32_t>(file, 0x238, 2047);     // cmdline_size
  Put<uint32_t>(file, 0x260, 0x10000);  // init_size
  const std::vector<uint8_t> code = TinyCode(program);
  file.insert(file.end(), code.begin(), code.end());
  Put<uint32_t>(file, 0x1f4, static_cast<uint32_t>((file.size() - kSetupSize + 15) / 16));
  return file;
}

std::vector<uint8_t> TinyElf(TinyProgram program) {
  const std::vector<uint8_t> code = TinyCode(program);
  const uint64_t code_offset = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = layout::kKernelLoadAddr;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_flags = PF_R | PF_X;
  ph.p_offset = code_offset;
  ph.p_vaddr = ph.p_paddr = layout::kKernelLoadAddr;
  ph.p_filesz = code.size();
  ph.p_memsz = code.size() + 0x1000;  // some .bss
  ph.p_align = 0x1000;
  std::vector<uint8_t> file(code_offset);
  std::memcpy(file.data(), &eh, sizeof(eh));
  std::memcpy(file.data() + sizeof(eh), &ph, sizeof(ph));
  file.insert(file.end(), code.begin(), code.end());
  return file;
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = fopen(path.c_str(), "wbe");
  if (f == nullptr || fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || fclose(f) != 0) {
    perror(path.c_str());
    abort();
  }
}

}  // namespace skiff::gen2::testing

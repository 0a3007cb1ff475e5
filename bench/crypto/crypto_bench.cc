// crypto_bench: the mixtape side of bench/crypto/run.sh. Each subcommand does
// what its peer CLI does, file to file, so run.sh can time both the same way
// (wall clock around the whole process):
//
//   crypto_bench encrypt RECIPIENT IN OUT [THREADS]   ~ age -r RECIPIENT -o OUT IN
//   crypto_bench decrypt IDENTITY_FILE IN OUT [THREADS] ~ age -d -i IDENTITY_FILE -o OUT IN
//   crypto_bench hash IN                               ~ b2sum -l 256 IN
//   crypto_bench hash-libb2 IN                         the same through libb2 alone
//     (one stream each; `hash` uses whichever of libb2 and the scalar kernel
//     measured faster on this machine)
//   crypto_bench hash-files IN...                      ~ b2sum -l 256 IN...
//     (eight files at a time in the lanes of crypto::Blake2b256Lanes, one
//     thread, as the writer's hash threads do; digests in the order given)
#include <blake2.h>
#include <fcntl.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/crypto/crypto.h"

namespace {

using namespace mixtape;

// 1 MiB: syscalls are noise at this size, and the data is still in cache when sealed.
constexpr std::size_t kBuffer = 1 << 20;

unsigned threads_arg(int argc, char** argv, int index) {
  return argc > index ? static_cast<unsigned>(std::stoul(argv[index])) : 2;
}

void encrypt(const std::string& recipient, const std::string& in, const std::string& out,
             unsigned threads) {
  UniqueFd in_fd = open_file(in, O_RDONLY);
  UniqueFd out_fd = open_file(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  FdSource source(in_fd.get(), in);
  FdSink sink(out_fd.get(), out);
  std::vector<crypto::X25519Recipient> recipients{crypto::X25519Recipient::parse(recipient)};
  crypto::AgeEncryptOptions options;
  options.threads = threads;
  crypto::AgeEncryptor encryptor(sink, recipients, options);
  Bytes buffer(kBuffer);
  for (std::size_t n; (n = source.read(buffer)) > 0;) encryptor.write({buffer.data(), n});
  encryptor.close();
}

void decrypt(const std::string& identity_file, const std::string& in, const std::string& out,
             unsigned threads) {
  crypto::AgeDecryptKeys keys;
  keys.identities = crypto::load_identities(identity_file);
  UniqueFd in_fd = open_file(in, O_RDONLY);
  UniqueFd out_fd = open_file(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  FdSource source(in_fd.get(), in);
  crypto::AgeDecryptor decryptor(source, keys, {crypto::AgeArmor::Auto, threads});
  Bytes buffer(kBuffer);
  for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
    write_all(out_fd.get(), {buffer.data(), n}, out);
}

void hash_libb2(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  FdSource source(fd.get(), path);
  Bytes buffer(kBuffer);
  blake2b_state state;
  if (blake2b_init(&state, crypto::kBlake2b256Size) != 0) throw Error("libb2 failed to initialise");
  for (std::size_t n; (n = source.read(buffer)) > 0;) blake2b_update(&state, buffer.data(), n);
  crypto::Blake2b256Digest digest{};
  blake2b_final(&state, digest.data(), digest.size());
  std::printf("%s  %s\n", to_hex(digest).c_str(), path.c_str());
}

void hash_files(int count, char** paths) {
  constexpr std::size_t kLanes = crypto::Blake2b256Lanes::kLanes;
  constexpr std::size_t kRead = 128 << 10;  // the writer's per-lane read
  struct Lane {
    int index = -1;  // into paths; -1: free
    UniqueFd fd;
    Bytes buffer = Bytes(kRead);
  };
  crypto::Blake2b256Lanes lanes;
  std::vector<Lane> lane(kLanes);
  std::vector<std::string> digests(static_cast<std::size_t>(count));
  int next = 0;
  for (int done = 0; done < count;) {
    std::array<ByteSpan, kLanes> pieces{};
    for (std::size_t i = 0; i < kLanes; ++i) {
      if (lane[i].index < 0 && next < count) {
        lane[i].index = next++;
        lane[i].fd = open_file(paths[lane[i].index], O_RDONLY);
      }
      if (lane[i].index < 0) continue;
      std::size_t n = FdSource(lane[i].fd.get(), paths[lane[i].index]).read(lane[i].buffer);
      if (n > 0) {
        pieces[i] = {lane[i].buffer.data(), n};
        continue;
      }
      digests[static_cast<std::size_t>(lane[i].index)] = to_hex(lanes.finish(i));
      lane[i].index = -1;
      lane[i].fd.reset();
      ++done;
    }
    lanes.update(pieces);
  }
  for (int i = 0; i < count; ++i)
    std::printf("%s  %s\n", digests[static_cast<std::size_t>(i)].c_str(), paths[i]);
}

int usage() {
  std::fprintf(stderr,
               "usage: crypto_bench encrypt RECIPIENT IN OUT [THREADS]\n"
               "       crypto_bench decrypt IDENTITY_FILE IN OUT [THREADS]\n"
               "       crypto_bench hash IN\n"
               "       crypto_bench hash-libb2 IN\n"
               "       crypto_bench hash-files IN...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string command = argc > 1 ? argv[1] : "";
    if (command == "encrypt" && argc >= 5) {
      encrypt(argv[2], argv[3], argv[4], threads_arg(argc, argv, 5));
    } else if (command == "decrypt" && argc >= 5) {
      decrypt(argv[2], argv[3], argv[4], threads_arg(argc, argv, 5));
    } else if (command == "hash-files" && argc >= 3) {
      hash_files(argc - 2, argv + 2);
    } else if (command == "hash-libb2" && argc == 3) {
      hash_libb2(argv[2]);
    } else if (command == "hash" && argc == 3) {
      std::printf("%s  %s\n", crypto::blake2b256_file_hex(argv[2]).c_str(), argv[2]);
    } else {
      return usage();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crypto_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

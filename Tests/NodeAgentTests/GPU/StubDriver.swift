import Foundation

/// A stand-in for `libnvidia-ml.so.1` and `libcuda.so.1` in one shared library, compiled from C when a C
/// compiler is at hand, so that tests reach the real NVML and CUDA bindings (symbols, argument types,
/// status codes) on machines without a GPU.
///
/// It has two GPUs of 64 MiB. NVML lists them in one order and CUDA in the other, so a scrub that matched
/// devices by index rather than UUID would scrub the wrong one. GPU 0 is exclusive-process without MIG;
/// GPU 1 has MIG on and the shared compute mode. No allocation may exceed 16 MiB. `stub_set_processes(n)`
/// makes NVML report `n` processes (pids 1000…) on every GPU.
enum StubDriver {
    /// A C compiler, if there is one.
    static let compiler: String? = ["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/gcc"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Compiles the stub into a new temporary folder and returns the library's path.
    static func build() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gpu-stub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let source = folder.appendingPathComponent("stub.c")
        let library = folder.appendingPathComponent("libstubgpu.so").path
        try Self.source.write(to: source, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler ?? "/usr/bin/cc")
        process.arguments = ["-shared", "-fPIC", "-O1", "-o", library, source.path]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        return library
    }

    static let source = #"""
        #include <stdint.h>
        #include <stdlib.h>
        #include <string.h>

        static const unsigned char uuids[2][16] = {
            {0x00,0x11,0x22,0x33,0x44,0x55,0x66,0x77,0x88,0x99,0xaa,0xbb,0xcc,0xdd,0xee,0xff},
            {0xff,0xee,0xdd,0xcc,0xbb,0xaa,0x99,0x88,0x77,0x66,0x55,0x44,0x33,0x22,0x11,0x00},
        };
        static const char *uuidText[2] = {
            "GPU-00112233-4455-6677-8899-aabbccddeeff", "GPU-ffeeddcc-bbaa-9988-7766-554433221100",
        };
        static int devices[2] = {0, 1};
        static int processes = 0;
        #define TOTAL (64u << 20)
        #define LARGEST (16u << 20)

        void stub_set_processes(int n) { processes = n; }

        int nvmlInit_v2(void) { return 0; }
        const char *nvmlErrorString(int status) { return status == 7 ? "Insufficient Size" : "Stub Error"; }
        int nvmlDeviceGetCount_v2(unsigned *count) { *count = 2; return 0; }
        int nvmlDeviceGetHandleByIndex_v2(unsigned index, void **device) {
            if (index > 1) return 2;
            *device = &devices[index];
            return 0;
        }
        int nvmlDeviceGetHandleByUUID(const char *uuid, void **device) {
            for (int i = 0; i < 2; i++) if (strcmp(uuid, uuidText[i]) == 0) { *device = &devices[i]; return 0; }
            return 6;
        }
        int nvmlDeviceGetName(void *device, char *name, unsigned length) {
            strncpy(name, "Stub GPU", length);
            return 0;
        }
        int nvmlDeviceGetUUID(void *device, char *uuid, unsigned length) {
            strncpy(uuid, uuidText[*(int *)device], length);
            return 0;
        }
        int nvmlDeviceGetMemoryInfo(void *device, unsigned long long *memory) {
            memory[0] = TOTAL; memory[1] = TOTAL; memory[2] = 0;
            return 0;
        }
        int nvmlDeviceGetMigMode(void *device, unsigned *current, unsigned *pending) {
            if (*(int *)device == 0) return 3;
            *current = 1; *pending = 1;
            return 0;
        }
        int nvmlDeviceGetComputeMode(void *device, unsigned *mode) {
            *mode = *(int *)device == 0 ? 3 : 0;
            return 0;
        }
        int nvmlDeviceGetEccMode(void *device, unsigned *current, unsigned *pending) {
            *current = 1; *pending = 1;
            return 0;
        }
        int nvmlSystemGetDriverVersion(char *version, unsigned length) {
            strncpy(version, "999.1.2", length);
            return 0;
        }
        struct info { unsigned pid; unsigned long long used; unsigned gi; unsigned ci; };
        int nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned *count, struct info *infos) {
            if (processes == 0) { *count = 0; return 0; }
            if (infos == 0 || *count < (unsigned)processes) { *count = processes; return 7; }
            for (int i = 0; i < processes; i++) { infos[i].pid = 1000 + i; infos[i].used = 1; }
            *count = processes;
            return 0;
        }

        static size_t used = 0;
        static struct { uint64_t address; size_t bytes; } blocks[256];
        static int current = -1;

        int cuInit(unsigned flags) { return 0; }
        int cuGetErrorName(int status, const char **name) { *name = "CUDA_ERROR_STUB"; return 0; }
        int cuDeviceGetCount(int *count) { *count = 2; return 0; }
        int cuDeviceGet(int *device, int ordinal) { *device = ordinal; return ordinal > 1 ? 101 : 0; }
        int cuDeviceGetUuid_v2(unsigned char *uuid, int device) { memcpy(uuid, uuids[1 - device], 16); return 0; }
        int cuCtxCreate_v2(void **context, unsigned flags, int device) {
            if (current != -1) return 216;
            current = 1 - device;
            *context = &devices[current];
            return 0;
        }
        int cuCtxDestroy_v2(void *context) {
            for (int i = 0; i < 256; i++) if (blocks[i].address) { free((void *)blocks[i].address); blocks[i].address = 0; }
            used = 0; current = -1;
            return 0;
        }
        int cuCtxSynchronize(void) { return 0; }
        int cuMemGetInfo_v2(size_t *freeBytes, size_t *total) { *freeBytes = TOTAL - used; *total = TOTAL; return 0; }
        int cuMemAlloc_v2(uint64_t *address, size_t bytes) {
            if (current != 0 || bytes > LARGEST || bytes > TOTAL - used) return 2;
            for (int i = 0; i < 256; i++) if (!blocks[i].address) {
                blocks[i].address = (uint64_t)malloc(bytes);
                blocks[i].bytes = bytes;
                used += bytes;
                *address = blocks[i].address;
                return 0;
            }
            return 2;
        }
        int cuMemsetD32_v2(uint64_t address, unsigned value, size_t words) {
            for (size_t i = 0; i < words; i++) ((unsigned *)address)[i] = value;
            return 0;
        }
        int cuMemcpyDtoH_v2(void *host, uint64_t address, size_t bytes) { memcpy(host, (void *)address, bytes); return 0; }
        int cuMemFree_v2(uint64_t address) {
            for (int i = 0; i < 256; i++) if (blocks[i].address == address) {
                free((void *)address); blocks[i].address = 0; used -= blocks[i].bytes;
                return 0;
            }
            return 1;
        }
        """#
}

using System.Runtime.InteropServices;

namespace PipeTransport.Interop;

/// <summary>
/// <c>struct epoll_event</c> is packed on x86-64 (12 bytes: events at 0, data at 4) and naturally
/// aligned elsewhere (16 bytes: data at 8). Mono.Posix gets this and the flag values wrong, so the
/// layout is handled here by hand.
/// </summary>
internal static unsafe class EpollEvent
{
    public static readonly int Size = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    private static readonly int DataOffset = Size == 12 ? 4 : 8;

    public static void Write(byte* ev, uint events, ulong data)
    {
        *(uint*)ev = events;
        *(ulong*)(ev + DataOffset) = data;
    }

    public static uint Events(byte* buffer, int index) => *(uint*)(buffer + index * Size);

    public static ulong Data(byte* buffer, int index) => *(ulong*)(buffer + index * Size + DataOffset);
}

using System.Runtime.InteropServices;

namespace PipeTransport.Interop;

/// <summary>Native memory for one reactor's <c>epoll_wait</c> batch, allocated once.</summary>
internal sealed unsafe class EpollEventBuffer : IDisposable
{
    private byte* _events;

    public EpollEventBuffer(int capacity)
    {
        Capacity = capacity;
        _events = (byte*)NativeMemory.AllocZeroed((nuint)(capacity * EpollEvent.Size));
    }

    public int Capacity { get; }

    /// <summary>Waits for events; returns how many (or the negated errno). Interrupted waits are retried.</summary>
    public int Wait(int epfd, int timeoutMs)
    {
        int r;
        while (Sys.Interrupted(r = Libc.EpollWait(epfd, _events, Capacity, timeoutMs))) { }
        return (int)Sys.Result(r);
    }

    public uint Events(int index) => EpollEvent.Events(_events, index);

    public ulong Data(int index) => EpollEvent.Data(_events, index);

    public void Dispose()
    {
        NativeMemory.Free(_events);
        _events = null;
    }
}

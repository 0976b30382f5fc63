using PipeTransport.Interop;

namespace PipeTransport.Reactor;

/// <summary>
/// One fd registered with one reactor, once, for both directions (<c>EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET</c>).
/// </summary>
internal sealed class Registration
{
    private int _hangUp;
    private int _unregistered;

    internal Registration(EpollReactor reactor, int fd, int index, uint generation)
    {
        Reactor = reactor;
        Fd = fd;
        Index = index;
        Generation = generation;
    }

    public EpollReactor Reactor { get; }

    public int Fd { get; }

    public int Index { get; }

    public uint Generation { get; }

    public ReadinessSlot Read { get; } = new();

    public ReadinessSlot Write { get; } = new();

    /// <summary>
    /// The kernel reported hang-up, peer shutdown or an error: a read will now return EOF or the
    /// error instead of blocking, so it is safe to read even with nothing buffered.
    /// </summary>
    public bool HangUpSeen => Volatile.Read(ref _hangUp) != 0;

    /// <summary>Reactor thread: dispatches one epoll event.</summary>
    internal void OnEvents(uint events)
    {
        // HUP and ERR count as both readable and writable: the next syscall reports the truth.
        if ((events & (Libc.EPOLLHUP | Libc.EPOLLRDHUP | Libc.EPOLLERR)) != 0)
        {
            Volatile.Write(ref _hangUp, 1);
        }

        if ((events & (Libc.EPOLLIN | Libc.EPOLLHUP | Libc.EPOLLRDHUP | Libc.EPOLLERR)) != 0)
        {
            Read.Signal();
        }

        if ((events & (Libc.EPOLLOUT | Libc.EPOLLHUP | Libc.EPOLLERR)) != 0)
        {
            Write.Signal();
        }
    }

    /// <summary>
    /// Removes the fd from epoll (the fd must still be open) and wakes both waiters with
    /// <paramref name="reason"/>. Idempotent.
    /// </summary>
    public void Unregister(Exception? reason = null)
    {
        if (Interlocked.Exchange(ref _unregistered, 1) != 0)
        {
            return;
        }

        Reactor.Remove(this);
        Read.Close(reason);
        Write.Close(reason);
    }
}

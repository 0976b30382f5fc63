using PipeTransport.Interop;

namespace PipeTransport.Reactor;

/// <summary>
/// One fd registered with one reactor, once, for both directions (<c>EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET</c>).
/// It is its own read readiness slot (an idle fd is one object, not three); the fd's owner
/// (<see cref="Connection.FdChannel"/>) derives from it.
/// </summary>
internal abstract class Registration : ReadinessSlot
{
    private int _hangUp;
    private int _unregistered;
    private ReadinessSlot? _write;

    protected Registration(int fd) => Fd = fd;

    public EpollReactor? Reactor { get; private set; }

    public int Fd { get; }

    private volatile bool _oneShotRead;

    /// <summary>
    /// Registered for reading only, with <c>EPOLLONESHOT</c> (a pipe's read end read on demand): epoll reports
    /// one edge, then nothing until a reader parks and re-arms it. A pipe wakes its epoll waiter on every
    /// write, waited for or not; a reader that reads on its own thread until <c>EAGAIN</c> has no use for those.
    /// </summary>
    public bool OneShotRead => _oneShotRead;

    /// <summary>The epoll data word of this registration (index and generation).</summary>
    public ulong Token => ((ulong)Generation << 32) | (uint)Index;

    /// <summary>The events asked of epoll.</summary>
    public uint Events => OneShotRead
        ? Libc.EPOLLIN | Libc.EPOLLRDHUP | Libc.EPOLLET | Libc.EPOLLONESHOT
        : Libc.EPOLLIN | Libc.EPOLLOUT | Libc.EPOLLRDHUP | Libc.EPOLLET;

    public int Index { get; private set; }

    public uint Generation { get; private set; }

    /// <summary>Read readiness: this object.</summary>
    public ReadinessSlot Read => this;

    /// <summary>
    /// Write readiness, made on first use: most fds are writable whenever they are written to, and an
    /// idle connection should not carry a second slot. A new slot starts <c>Ready</c> (the first wait
    /// returns at once and the write is tried), so edges that came before it are not lost.
    /// </summary>
    public ReadinessSlot Write => Volatile.Read(ref _write) ?? CreateWrite();

    /// <summary>The send side waits for writability (the kernel pushed back); does not make the write slot.</summary>
    internal bool WriteWaiting => Volatile.Read(ref _write)?.IsWaiting == true;

    /// <summary>
    /// The kernel reported hang-up, peer shutdown or an error: a read will now return EOF or the
    /// error instead of blocking, so it is safe to read even with nothing buffered.
    /// </summary>
    public bool HangUpSeen => Volatile.Read(ref _hangUp) != 0;

    /// <summary>The reactor took the fd (under its lock, before <c>epoll_ctl</c>).</summary>
    internal void Attach(EpollReactor reactor, int index, uint generation)
    {
        Reactor = reactor;
        Index = index;
        Generation = generation;
    }

    /// <summary>Switches between one-shot reading and every edge both ways; epoll reports what is ready now either way.</summary>
    internal void SetOneShotRead(bool oneShot)
    {
        if (_oneShotRead != oneShot)
        {
            _oneShotRead = oneShot;
            Rearm();
        }
    }

    /// <summary>A one-shot registration is armed again for the reader that just parked.</summary>
    protected override void OnParked()
    {
        if (OneShotRead)
        {
            Rearm();
        }
    }

    /// <summary>Asks epoll for <see cref="Events"/> again (<c>EPOLL_CTL_MOD</c>) while the fd is surely open.</summary>
    protected abstract void Rearm();

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
            Volatile.Read(ref _write)?.Signal(); // no slot yet: it will start Ready
        }
    }

    /// <summary>
    /// Removes the fd from epoll (the fd must still be open) and wakes both waiters with
    /// <paramref name="reason"/>. Idempotent.
    /// </summary>
    public void RemoveFromReactor(Exception? reason = null)
    {
        if (Interlocked.Exchange(ref _unregistered, 1) != 0)
        {
            return;
        }

        Reactor!.Remove(this);
        CloseWaits(reason);
        Interlocked.MemoryBarrier();
        Volatile.Read(ref _write)?.CloseWaits(reason);
    }

    private ReadinessSlot CreateWrite()
    {
        var made = new ReadinessSlot();
        ReadinessSlot slot = Interlocked.CompareExchange(ref _write, made, null) ?? made;
        if (Volatile.Read(ref _unregistered) != 0)
        {
            slot.CloseWaits(CloseReason); // unregistered while this was made: as closed as the read side
        }

        return slot;
    }
}

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { api } from '../api';
import { MoonlightSteps } from '../components/MoonlightSteps';
import { PinForm } from '../components/PinForm';
import { Button, Card, ErrorNotice } from '../components/ui';

export function PairingPage() {
  const net = useQuery({ queryKey: ['network'], queryFn: api.network, staleTime: 60_000 });
  return (
    <>
      <h1>Pair a device</h1>
      <Card title="Moonlight">
        <MoonlightSteps address={net.data?.addresses[0]} />
        <PinForm />
      </Card>
      <NativePairing />
    </>
  );
}

function NativePairing() {
  const qc = useQueryClient();
  const status = useQuery({ queryKey: ['pairing'], queryFn: api.pairing, refetchInterval: 1000 });
  const arm = useMutation({ mutationFn: api.armNative, onSuccess: () => qc.invalidateQueries({ queryKey: ['pairing'] }) });
  const disarm = useMutation({ mutationFn: api.disarmNative, onSuccess: () => qc.invalidateQueries({ queryKey: ['pairing'] }) });
  const native = status.data?.native ?? null;
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const left = native ? Math.max(0, Math.round(native.expires_at - now / 1000)) : 0;
  return (
    <Card title="punktfunk client">
      <p>
        The punktfunk app pairs the other way round: arm pairing here, then type the PIN shown below into the app
        within two minutes.
      </p>
      {native ? (
        <div className="native-pin">
          <p className="big-pin" aria-label={`PIN ${native.pin.split('').join(' ')}`}>
            {native.pin}
          </p>
          <p role="timer" aria-live="off">
            Valid for {left} s. Three wrong tries close it.
          </p>
          <Button variant="secondary" busy={disarm.isPending} onClick={() => disarm.mutate()}>
            Stop pairing
          </Button>
        </div>
      ) : (
        <Button busy={arm.isPending} busyLabel="Arming" onClick={() => arm.mutate()}>
          Show a PIN
        </Button>
      )}
      <ErrorNotice error={arm.error ?? disarm.error} />
    </Card>
  );
}

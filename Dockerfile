# One image for the api and the worker. TORCH_INDEX picks the wheel: the CPU index by default,
# e.g. https://download.pytorch.org/whl/cu128 for a CUDA worker image.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 SERVICE_DATA_DIR=/data SERVICE_HOST=0.0.0.0
WORKDIR /app
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" torch==2.13.0
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY alembic ./alembic
RUN pip install --no-cache-dir -e .
VOLUME /data
EXPOSE 8000
CMD ["service", "up"]
